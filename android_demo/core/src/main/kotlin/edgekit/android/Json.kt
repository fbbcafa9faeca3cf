package edgekit.android

/**
 * A small JSON reader and writer: the manifest in, the benchmark file out.
 *
 * The core module has no dependencies (it compiles with a bare kotlinc and runs its tests on
 * any JVM), and Android's org.json is not on a plain JVM, so it carries its own. Values are
 * Kotlin's: Map<String, Any?> (insertion order kept), List<Any?>, String, Boolean, null, and
 * numbers as Long when written without a fraction or exponent, else Double.
 */
object Json {
    class JsonError(message: String) : IllegalArgumentException(message)

    fun parse(text: String): Any? {
        val p = Parser(text)
        p.skipWs()
        val v = p.value()
        p.skipWs()
        if (p.i != text.length) throw JsonError("unexpected text after the JSON value at ${p.i}")
        return v
    }

    fun write(value: Any?, indent: Int = 1): String {
        val sb = StringBuilder()
        emit(sb, value, indent, 0)
        return sb.toString()
    }

    private fun emit(sb: StringBuilder, v: Any?, indent: Int, depth: Int) {
        when (v) {
            null -> sb.append("null")
            is String -> quote(sb, v)
            is Boolean -> sb.append(v)
            is Double -> if (v.isFinite()) sb.append(v.toString()) else sb.append("null")
            is Float -> emit(sb, v.toDouble(), indent, depth)
            is Number -> sb.append(v.toLong())
            is Map<*, *> -> container(sb, v.entries.toList(), '{', '}', indent, depth) { e ->
                quote(sb, e.key.toString()); sb.append(if (indent > 0) ": " else ":"); emit(sb, e.value, indent, depth + 1)
            }
            is Iterable<*> -> container(sb, v.toList(), '[', ']', indent, depth) { emit(sb, it, indent, depth + 1) }
            is IntArray -> emit(sb, v.toList(), indent, depth)
            is LongArray -> emit(sb, v.toList(), indent, depth)
            is DoubleArray -> emit(sb, v.toList(), indent, depth)
            is FloatArray -> emit(sb, v.map { it.toDouble() }, indent, depth)
            else -> throw JsonError("cannot write a ${v.javaClass.simpleName} as JSON")
        }
    }

    private fun <T> container(sb: StringBuilder, items: List<T>, open: Char, close: Char, indent: Int, depth: Int,
                              each: (T) -> Unit) {
        sb.append(open)
        if (items.isEmpty()) { sb.append(close); return }
        // short lists of numbers stay on one line (latency lists, shapes)
        val flat = indent == 0 || items.all { it is Number || it == null }
        items.forEachIndexed { k, item ->
            if (k > 0) sb.append(if (flat && indent > 0) ", " else ",")
            if (!flat) { sb.append('\n'); repeat((depth + 1) * indent) { sb.append(' ') } }
            each(item)
        }
        if (!flat) { sb.append('\n'); repeat(depth * indent) { sb.append(' ') } }
        sb.append(close)
    }

    private fun quote(sb: StringBuilder, s: String) {
        sb.append('"')
        for (c in s) {
            when {
                c == '"' -> sb.append("\\\"")
                c == '\\' -> sb.append("\\\\")
                c == '\n' -> sb.append("\\n")
                c == '\r' -> sb.append("\\r")
                c == '\t' -> sb.append("\\t")
                c < ' ' -> sb.append(String.format("\\u%04x", c - '\u0000'))
                else -> sb.append(c)
            }
        }
        sb.append('"')
    }

    private class Parser(val s: String) {
        var i = 0

        fun skipWs() { while (i < s.length && s[i] in " \t\r\n") i++ }

        fun fail(what: String): Nothing = throw JsonError("bad JSON at character $i: $what")

        fun value(): Any? {
            if (i >= s.length) fail("unexpected end")
            return when (s[i]) {
                '{' -> obj()
                '[' -> arr()
                '"' -> str()
                't' -> lit("true", true)
                'f' -> lit("false", false)
                'n' -> lit("null", null)
                else -> num()
            }
        }

        fun lit(word: String, v: Any?): Any? {
            if (!s.startsWith(word, i)) fail("expected $word")
            i += word.length
            return v
        }

        fun obj(): Map<String, Any?> {
            val out = LinkedHashMap<String, Any?>()
            i++; skipWs()
            if (i < s.length && s[i] == '}') { i++; return out }
            while (true) {
                skipWs()
                if (i >= s.length || s[i] != '"') fail("expected a key")
                val k = str()
                skipWs()
                if (i >= s.length || s[i] != ':') fail("expected ':'")
                i++; skipWs()
                out[k] = value()
                skipWs()
                if (i < s.length && s[i] == ',') { i++; continue }
                if (i < s.length && s[i] == '}') { i++; return out }
                fail("expected ',' or '}'")
            }
        }

        fun arr(): List<Any?> {
            val out = ArrayList<Any?>()
            i++; skipWs()
            if (i < s.length && s[i] == ']') { i++; return out }
            while (true) {
                skipWs()
                out.add(value())
                skipWs()
                if (i < s.length && s[i] == ',') { i++; continue }
                if (i < s.length && s[i] == ']') { i++; return out }
                fail("expected ',' or ']'")
            }
        }

        fun str(): String {
            val sb = StringBuilder()
            i++
            while (true) {
                if (i >= s.length) fail("unterminated string")
                val c = s[i++]
                when (c) {
                    '"' -> return sb.toString()
                    '\\' -> {
                        if (i >= s.length) fail("unterminated escape")
                        when (val e = s[i++]) {
                            '"' -> sb.append('"'); '\\' -> sb.append('\\'); '/' -> sb.append('/')
                            'b' -> sb.append('\b'); 'f' -> sb.append('\u000c'); 'n' -> sb.append('\n')
                            'r' -> sb.append('\r'); 't' -> sb.append('\t')
                            'u' -> {
                                if (i + 4 > s.length) fail("short \\u escape")
                                sb.append(s.substring(i, i + 4).toInt(16).toChar()); i += 4
                            }
                            else -> fail("bad escape \\$e")
                        }
                    }
                    else -> sb.append(c)
                }
            }
        }

        fun num(): Number {
            val start = i
            if (i < s.length && s[i] == '-') i++
            while (i < s.length && (s[i].isDigit() || s[i] in ".eE+-")) i++
            val t = s.substring(start, i)
            if (t.length == 0 || t == "-") fail("expected a value")
            // Python's json writes NaN/Infinity as bare words; a manifest has none, a bench file may
            if (t.any { it in ".eE" }) return t.toDoubleOrNull() ?: fail("bad number $t")
            val asLong: Long? = t.toLongOrNull()
            if (asLong != null) return asLong
            return t.toDoubleOrNull() ?: fail("bad number $t")
        }
    }
}

/** Typed reads from parsed JSON, failing with one line that names the field. */
internal object J {
    fun obj(v: Any?, what: String): Map<String, Any?> {
        @Suppress("UNCHECKED_CAST")
        return v as? Map<String, Any?> ?: throw ManifestError("$what: expected an object")
    }
    fun list(v: Any?, what: String): List<Any?> = v as? List<Any?> ?: throw ManifestError("$what: expected a list")
    fun str(v: Any?, what: String): String = v as? String ?: throw ManifestError("$what: expected a string")
    fun num(v: Any?, what: String): Double = (v as? Number)?.toDouble() ?: throw ManifestError("$what: expected a number")
    fun int(v: Any?, what: String): Int {
        val d = num(v, what)
        if (d != Math.floor(d)) throw ManifestError("$what: expected an integer, got $d")
        return d.toInt()
    }
    fun ints(v: Any?, what: String): IntArray = list(v, what).mapIndexed { k, x -> int(x, "$what[$k]") }.toIntArray()
    fun floats(v: Any?, what: String): FloatArray =
        list(v, what).mapIndexed { k, x -> num(x, "$what[$k]").toFloat() }.toFloatArray()
}
