import Foundation
import PocketProtocol
import Synchronization

/// Hosts in network namespaces of their own, joined through a router namespace, so a test can cut
/// one host off the others the way a failed network does: packets silently dropped, no RST, no
/// ICMP, both ends' links up.
///
///     host "core": eth0 10.X.Y.1/30 ══ veth ══ 10.X.Y.2/30 to-0 ┐
///                                                             router (forwards)
///     host "far":  eth0 10.X.Y.5/30 ══ veth ══ 10.X.Y.6/30 to-1 ┘
///
/// Each host gets its own /30 inside a random 10.X.Y.0/24 and a default route via the router.
/// Nothing is configured in the root namespace: every address lives in a namespace made here, and
/// `delete` (which `withNamespaceNetwork` always runs) kills whatever still runs inside them and
/// removes them with their links.
///
/// How a partition is made, and why this way: the router discards everything from or to the host
/// with two policy-routing rules (`ip rule … blackhole`: drop, no ICMP). The drop happens in the
/// network, not at the sender, so both sides' TCP sees plain loss — retransmissions with
/// exponential back-off, as across a real failed switch — and ARP to the router keeps working.
/// The alternatives, tried on this machine's kernel (6.18, no loadable modules):
/// - `tc qdisc … netem loss 100%`: "Specified qdisc kind is unknown" (no sch_netem);
/// - `tc filter … matchall action drop`: "TC classifier not found" (no cls_matchall, no act_gact);
/// - nftables/iptables: the kernel has them, but neither `nft` nor `iptables` is installed;
/// - a `pfifo limit 0` qdisc on the hosts' own links: drops, but at the sender, where TCP takes it
///   for local congestion (a `connect` gave up with ETIMEDOUT after 6 s instead of retrying its SYN
///   for two minutes) — not what a partition looks like;
/// - `ip link set … down` in the host: not silent — the host's own sockets get ENETUNREACH at once,
///   and the peer's get EHOSTUNREACH once ARP fails (measured 3.06 s for a `connect`).
final class NamespaceNetwork: Sendable {
    struct Host: Sendable {
        /// The test's name for it ("core", "far").
        let label: String
        /// The network namespace.
        let namespace: String
        /// Its address on its link to the router.
        let address: String
        /// Its /30, as the router routes it.
        let subnet: String
        /// The router's address on the link: the host's default route.
        let gateway: String
        /// The router's end of its link.
        let routerLink: String
    }

    let router: String
    let hosts: [String: Host]
    private let deleted = Atomic<Bool>(false)

    /// Namespaces made by this test process: "pocket-<pid>-<n>-<label>".
    private static let counter = Atomic<Int>(0)
    private static let prefix = "pocket-"

    private init(router: String, hosts: [String: Host]) {
        self.router = router
        self.hosts = hosts
    }

    func host(_ label: String) -> Host {
        guard let host = hosts[label] else { fatalError("no host \(label) in this network") }
        return host
    }

    /// Makes the router and one namespace per label, joined as above.
    static func create(hosts labels: [String]) throws -> NamespaceNetwork {
        precondition(!labels.isEmpty && labels.count <= 63, "1 to 63 hosts")
        removeStaleNamespaces()
        let run = "\(prefix)\(getpid())-\(counter.add(1, ordering: .relaxed).newValue)"
        let (x, y) = (Int.random(in: 16...254), Int.random(in: 0...255))
        var hosts: [String: Host] = [:]
        for (index, label) in labels.enumerated() {
            // Interface names are at most 15 bytes; the link's name in the router only needs to be
            // unique there.
            hosts[label] = Host(
                label: label, namespace: "\(run)-\(label)", address: "10.\(x).\(y).\(4 * index + 1)",
                subnet: "10.\(x).\(y).\(4 * index)/30", gateway: "10.\(x).\(y).\(4 * index + 2)",
                routerLink: "to-\(index)")
        }
        let network = NamespaceNetwork(router: "\(run)-router", hosts: hosts)
        do {
            try network.build(labels.map { hosts[$0]! })
        } catch {
            network.delete()
            throw error
        }
        return network
    }

    private func build(_ hosts: [Host]) throws {
        try IPRoute.check(["netns", "add", router])
        try IPRoute.check(["-n", router, "link", "set", "lo", "up"])
        // Forwarding is per namespace and off in a new one.
        try IPRoute.check(["netns", "exec", router, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"])
        for host in hosts {
            try IPRoute.check(["netns", "add", host.namespace])
            try IPRoute.check(["-n", host.namespace, "link", "set", "lo", "up"])
            // Made inside the router with its peer moved straight into the host: no link, and no
            // address, ever appears in the root namespace.
            try IPRoute.check([
                "-n", router, "link", "add", host.routerLink, "type", "veth", "peer", "name", "eth0", "netns",
                host.namespace,
            ])
            try IPRoute.check(["-n", router, "addr", "add", "\(host.gateway)/30", "dev", host.routerLink])
            try IPRoute.check(["-n", router, "link", "set", host.routerLink, "up"])
            try IPRoute.check(["-n", host.namespace, "addr", "add", "\(host.address)/30", "dev", "eth0"])
            try IPRoute.check(["-n", host.namespace, "link", "set", "eth0", "up"])
            try IPRoute.check(["-n", host.namespace, "route", "add", "default", "via", host.gateway])
        }
    }

    /// Cuts `label` off every other host: the router drops whatever it gets from the host and
    /// whatever it would forward to it.
    func partition(_ label: String) throws {
        let host = host(label)
        try IPRoute.check(["-n", router, "rule", "add", "iif", host.routerLink, "priority", "100", "blackhole"])
        try IPRoute.check(["-n", router, "rule", "add", "to", host.subnet, "priority", "101", "blackhole"])
    }

    /// Undoes `partition`.
    func heal(_ label: String) throws {
        let host = host(label)
        try IPRoute.check(["-n", router, "rule", "del", "iif", host.routerLink, "priority", "100", "blackhole"])
        try IPRoute.check(["-n", router, "rule", "del", "to", host.subnet, "priority", "101", "blackhole"])
    }

    /// `command` run inside `label`'s namespace, as `ip` arguments.
    func arguments(in label: String, _ command: [String]) -> [String] {
        ["netns", "exec", host(label).namespace] + command
    }

    /// Kills every process still in the namespaces and deletes them (their links go with them).
    /// Safe to call more than once.
    func delete() {
        guard !deleted.exchange(true, ordering: .acquiringAndReleasing) else { return }
        Self.delete(namespaces: hosts.values.map(\.namespace) + [router])
    }

    private static func delete(namespaces: [String]) {
        for namespace in namespaces {
            // A namespace lives on while a process is in it, so kill those first.
            let pids = (try? IPRoute.run(["netns", "pids", namespace]))?.output ?? ""
            for pid in pids.split(whereSeparator: \.isNewline).compactMap({ Int32($0) }) { kill(pid, SIGKILL) }
            _ = try? IPRoute.run(["netns", "del", namespace])
        }
    }

    /// Removes namespaces that test processes no longer running left behind (a test process that
    /// crashed before its cleanup ran).
    private static func removeStaleNamespaces() {
        guard let listing = try? IPRoute.run(["netns", "list"]) else { return }
        let stale = listing.output.split(whereSeparator: \.isNewline).compactMap { line -> String? in
            let name = String(line.split(separator: " ").first ?? "")
            guard name.hasPrefix(prefix), let pid = Int32(name.dropFirst(prefix.count).prefix { $0 != "-" })
            else { return nil }
            return kill(pid, 0) != 0 && errno == ESRCH ? name : nil
        }
        delete(namespaces: stale)
    }

    /// Whether this process may make network namespaces (root, or CAP_SYS_ADMIN and CAP_NET_ADMIN).
    /// Any failure other than a refusal counts as permitted, so the test runs and shows it.
    static var permitted: Bool {
        let probe = "\(prefix)\(getpid())-probe-\(counter.add(1, ordering: .relaxed).newValue)"
        guard let result = try? IPRoute.run(["netns", "add", probe]) else { return true }
        if result.status == 0 {
            _ = try? IPRoute.run(["netns", "del", probe])
            return true
        }
        return !(result.errors.contains("Operation not permitted") || result.errors.contains("Permission denied"))
    }
}

/// Runs `body` with a fresh namespace network, and deletes the network afterwards however `body`
/// ends.
func withNamespaceNetwork<T>(
    hosts: [String], _ body: (NamespaceNetwork) async throws -> T
) async throws -> T {
    let network = try NamespaceNetwork.create(hosts: hosts)
    let result = await capture { try await body(network) }
    network.delete()
    return try result.get()
}

/// The `ip` command of iproute2.
enum IPRoute {
    struct Result {
        var status: Int32
        var output: String
        var errors: String
    }

    static func executable() throws -> URL {
        for path in ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        where FileManager.default.isExecutableFile(atPath: path) {
            return URL(fileURLWithPath: path)
        }
        throw PocketError(.notFound, "no `ip` command: install iproute2 (scripts/install-deps)")
    }

    /// Runs `ip arguments…` to completion.
    static func run(_ arguments: [String]) throws -> Result {
        let process = Process()
        process.executableURL = try executable()
        process.arguments = arguments
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // `ip` says little: reading both pipes after it exits cannot fill them and deadlock.
        process.waitUntilExit()
        return Result(
            status: process.terminationStatus,
            output: String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self),
            errors: String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
    }

    /// Runs `ip arguments…` and throws its complaint when it fails.
    static func check(_ arguments: [String]) throws {
        let result = try run(arguments)
        guard result.status == 0 else {
            throw PocketError(
                .internalError,
                "ip \(arguments.joined(separator: " ")) failed (\(result.status)): "
                    + result.errors.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }
}
