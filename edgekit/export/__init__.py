"""Export stage: ONNX, TFLite/LiteRT, Core ML and TensorRT artifacts with a parity gate."""
