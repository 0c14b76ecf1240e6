import Foundation
import PocketProtocol

/// The rightsizing policy as a JSON file (`pocket controller --policy FILE`). Every key is optional
/// and keeps its default when absent; sizes and rates take human units ("600Mb/s", "64GiB") or
/// plain numbers of bytes. Unknown keys are errors, so a typo does not silently keep a default.
///
///     { "per_lambda_throughput": "600Mb/s", "default_nodes": 2,
///       "tiers": { "ssd": { "node_throughput": "8Gb/s", "node_capacity": "2500GB",
///                           "price_per_gb_hour": 0.0000448, "price_per_gbps_hour": 0.0425 } } }
extension RightsizingPolicy {
    public init(json: Data) throws(PocketError) {
        self.init()
        guard let object = try? JSONSerialization.jsonObject(with: json), let root = object as? [String: Any] else {
            throw PocketError(.invalidArgument, "the policy file is not a JSON object")
        }
        try Self.checkKeys(root, ["per_lambda_throughput", "default_nodes", "tiers"], in: "the policy")
        if let value = root["per_lambda_throughput"] {
            perLambdaThroughput = try Self.quantity(value, "per_lambda_throughput", rate: true)
        }
        if let value = root["default_nodes"] {
            defaultNodes = try Self.number(value, "default_nodes")
        }
        guard let tiersValue = root["tiers"] else { return }
        guard let tiers = tiersValue as? [String: Any] else {
            throw PocketError(.invalidArgument, "'tiers' must be an object keyed by dram, ssd and hdd")
        }
        for (name, value) in tiers {
            guard let tier = Tier(name: name) else {
                throw PocketError(.invalidArgument, "unknown tier '\(name)' in the policy (dram, ssd, hdd)")
            }
            guard let fields = value as? [String: Any] else {
                throw PocketError(.invalidArgument, "tier '\(name)' must be an object")
            }
            try Self.checkKeys(
                fields, ["node_throughput", "node_capacity", "price_per_gb_hour", "price_per_gbps_hour"], in: name)
            var profile = self.profile(tier)
            if let value = fields["node_throughput"] {
                profile.nodeThroughput = try Self.quantity(value, "\(name).node_throughput", rate: true)
            }
            if let value = fields["node_capacity"] {
                profile.nodeCapacity = try Self.quantity(value, "\(name).node_capacity", rate: false)
            }
            if let value = fields["price_per_gb_hour"] {
                profile.pricePerGBHour = try Self.number(value, "\(name).price_per_gb_hour", allowZero: true)
            }
            if let value = fields["price_per_gbps_hour"] {
                profile.pricePerGbpsHour = try Self.number(value, "\(name).price_per_gbps_hour", allowZero: true)
            }
            self.tiers[tier] = profile
        }
    }

    /// The policy as the JSON a `--policy` file takes.
    public var json: String {
        var lines = [
            "{",
            "  \"per_lambda_throughput\": \"\(Self.exactRate(perLambdaThroughput))\",",
            "  \"default_nodes\": \(defaultNodes),",
            "  \"tiers\": {",
        ]
        for (index, tier) in Tier.allCases.enumerated() {
            let profile = self.profile(tier)
            lines.append(
                "    \"\(tier)\": { \"node_throughput\": \"\(Self.exactRate(profile.nodeThroughput))\", "
                    + "\"node_capacity\": \"\(Self.exactSize(profile.nodeCapacity))\", "
                    + "\"price_per_gb_hour\": \(profile.pricePerGBHour), "
                    + "\"price_per_gbps_hour\": \(profile.pricePerGbpsHour) }"
                    + (index == Tier.allCases.count - 1 ? "" : ","))
        }
        lines += ["  }", "}"]
        return lines.joined(separator: "\n")
    }

    /// A rate in the largest bit unit that writes it exactly ("600Mb/s"), else bytes per second.
    private static func exactRate(_ bytesPerSecond: UInt64) -> String {
        let bits = bytesPerSecond * 8
        for (unit, scale) in [("Gb/s", UInt64(1_000_000_000)), ("Mb/s", 1_000_000)] where bits % scale == 0 {
            return "\(bits / scale)\(unit)"
        }
        return "\(bytesPerSecond)B/s"
    }

    /// A size in the largest unit that writes it exactly ("64GiB", "2500GB"), else bytes.
    private static func exactSize(_ bytes: UInt64) -> String {
        for (unit, scale) in [
            ("TiB", UInt64(1) << 40), ("GiB", 1 << 30), ("TB", 1_000_000_000_000), ("GB", 1_000_000_000),
        ]
        where bytes % scale == 0 {
            return "\(bytes / scale)\(unit)"
        }
        return "\(bytes)B"
    }

    private static func checkKeys(_ object: [String: Any], _ known: Set<String>, in place: String) throws(PocketError) {
        if let unknown = object.keys.sorted().first(where: { !known.contains($0) }) {
            throw PocketError(
                .invalidArgument,
                "unknown key '\(unknown)' in \(place) (known: \(known.sorted().joined(separator: ", ")))")
        }
    }

    private static func quantity(_ value: Any, _ key: String, rate: Bool) throws(PocketError) -> UInt64 {
        let parsed: UInt64?
        if let text = value as? String {
            parsed = rate ? try? Units.parseRate(text) : try? Units.parseSize(text)
        } else if let number = value as? Double, number >= 1, number < 1.8e19 {
            parsed = UInt64(number)
        } else {
            parsed = nil
        }
        guard let parsed, parsed > 0 else {
            throw PocketError(.invalidArgument, "'\(key)' must be a positive \(rate ? "rate" : "size")")
        }
        return parsed
    }

    private static func number(_ value: Any, _ key: String, allowZero: Bool = false) throws(PocketError) -> Double {
        guard let number = value as? Double, number.isFinite, allowZero ? number >= 0 : number > 0 else {
            throw PocketError(.invalidArgument, "'\(key)' must be a \(allowZero ? "non-negative" : "positive") number")
        }
        return number
    }
}
