/// Human units for sizes and rates, shared by the CLI, the xattr interface and status tables.
///
/// Sizes: a number with an optional unit: B; KB MB GB TB PB (powers of 1000); KiB MiB GiB TiB PiB
/// and K M G T P (powers of 1024). Rates: a size with an optional `/s`, or bits per second written
/// Kb Mb Gb Tb (or Kbit…, with or without `/s`, or `bps`).
public enum Units {
    public struct ParseError: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    public static func parseSize(_ text: String) throws(ParseError) -> UInt64 {
        let (number, unit) = try split(text)
        guard let multiplier = byteMultiplier(unit) else {
            throw ParseError(
                description: "unknown size unit '\(unit)' in '\(text)' (use B, KiB, MiB, GiB, KB, MB, GB…)")
        }
        return try scale(number, multiplier, text)
    }

    public static func parseRate(_ text: String) throws(ParseError) -> UInt64 {
        var body = text.trimmingSpaces
        for suffix in ["/s", "ps"] where body.hasSuffix(suffix) && body.count > suffix.count {
            body.removeLast(suffix.count)
            break
        }
        let (number, unit) = try split(body)
        if let multiplier = byteMultiplier(unit) { return try scale(number, multiplier, text) }
        if let bits = bitMultiplier(unit) { return try scale(number, bits / 8, text) }
        throw ParseError(description: "unknown rate unit '\(unit)' in '\(text)' (use MB/s, GiB/s, Gb/s…)")
    }

    public static func formatSize(_ bytes: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
        var value = Double(bytes)
        var index = 0
        while value >= 1024, index < units.count - 1 {
            value /= 1024
            index += 1
        }
        if index == 0 { return "\(bytes) B" }
        return "\(trimmed(value)) \(units[index])"
    }

    public static func formatRate(_ bytesPerSecond: UInt64) -> String {
        formatSize(bytesPerSecond) + "/s"
    }

    /// US dollars with four significant digits below $1 ("$0.04267"), cents above ("$3.78").
    public static func formatDollars(_ dollars: Double) -> String {
        guard dollars.isFinite, dollars > 0 else { return "$0" }
        var decimals = 2
        var scaled = dollars * 100
        while dollars < 1, scaled < 1000, decimals < 9 {
            decimals += 1
            scaled *= 10
        }
        let units = (dollars * pow10(decimals)).rounded()
        let whole = Int(units / pow10(decimals))
        let fraction = String(Int(units - Double(whole) * pow10(decimals)))
        return "$\(whole)." + String(repeating: "0", count: decimals - fraction.count) + fraction
    }

    private static func pow10(_ power: Int) -> Double { (0..<power).reduce(1) { acc, _ in acc * 10 } }

    /// Two significant decimals at most, without trailing zeros.
    public static func trimmed(_ value: Double) -> String {
        let hundredths = (value * 100).rounded()
        let whole = Int(hundredths) / 100
        let fraction = Int(hundredths) % 100
        if fraction == 0 { return "\(whole)" }
        if fraction % 10 == 0 { return "\(whole).\(fraction / 10)" }
        return "\(whole).\(fraction < 10 ? "0" : "")\(fraction)"
    }

    private static func split(_ text: String) throws(ParseError) -> (Double, String) {
        let trimmed = text.trimmingSpaces
        let numberPart = trimmed.prefix { $0.isNumber || $0 == "." }
        let unit = trimmed.dropFirst(numberPart.count).trimmingSpaces
        guard !numberPart.isEmpty, let number = Double(numberPart), number.isFinite else {
            throw ParseError(description: "'\(text)' is not a number with an optional unit")
        }
        return (number, unit)
    }

    private static func scale(_ number: Double, _ multiplier: Double, _ text: String) throws(ParseError) -> UInt64 {
        let value = (number * multiplier).rounded()
        guard value < 1.8e19 else { throw ParseError(description: "'\(text)' is too large") }
        return UInt64(value)
    }

    private static let prefixes: [Character: Double] = ["K": 1, "M": 2, "G": 3, "T": 4, "P": 5]

    private static func byteMultiplier(_ unit: String) -> Double? {
        if unit.isEmpty || unit == "B" { return 1 }
        guard let first = unit.first?.uppercased().first, let power = prefixes[first] else { return nil }
        switch unit.dropFirst() {
        case "", "iB", "ib": return pow1024(power)
        case "B": return pow1000(power)
        default: return nil
        }
    }

    private static func bitMultiplier(_ unit: String) -> Double? {
        if unit == "b" || unit == "bit" { return 1 }
        guard let first = unit.first?.uppercased().first, let power = prefixes[first] else { return nil }
        switch unit.dropFirst() {
        case "b", "bit": return pow1000(power)
        case "ib", "ibit": return pow1024(power)
        default: return nil
        }
    }

    private static func pow1000(_ power: Double) -> Double { (0..<Int(power)).reduce(1) { acc, _ in acc * 1000 } }
    private static func pow1024(_ power: Double) -> Double { (0..<Int(power)).reduce(1) { acc, _ in acc * 1024 } }
}

extension StringProtocol {
    var trimmingSpaces: String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
