import ArgumentParser
import Foundation
import PocketRPC

/// `--tls-cert`, `--tls-key`, `--tls-ca`, defaulting to `POCKET_TLS_CERT`, `POCKET_TLS_KEY` and
/// `POCKET_TLS_CA` so child processes and scripts inherit them. A daemon given them serves only TLS
/// and speaks TLS to the other servers; a client command speaks TLS when it has a CA to trust.
struct TLSOptions: ParsableArguments {
    @Option(
        name: .customLong("tls-cert"),
        help: ArgumentHelp(
            "Serve only TLS with this PEM certificate chain (servers; default $POCKET_TLS_CERT).", valueName: "file"))
    var certificate: String?
    @Option(
        name: .customLong("tls-key"),
        help: ArgumentHelp("The PEM private key of --tls-cert (default $POCKET_TLS_KEY).", valueName: "file"))
    var key: String?
    @Option(
        name: .customLong("tls-ca"),
        help: ArgumentHelp(
            "Connect with TLS, trusting the CA certificates in this PEM file (default $POCKET_TLS_CA).",
            valueName: "file"))
    var trustRoots: String?

    enum Role {
        /// Serves and connects: needs all three files, or none.
        case server
        /// Only connects: TLS when it has a CA; a certificate and key are not its to use.
        case client
    }

    /// The files in effect for `role`, as absolute paths (children may run elsewhere); nil: plain TCP.
    func files(for role: Role) throws -> TransportSecurity.Files? {
        let environment = ProcessInfo.processInfo.environment
        func value(_ option: String?, _ variable: String) -> String? {
            let value = option ?? environment[variable]
            return value.flatMap { $0.isEmpty ? nil : URL(fileURLWithPath: $0).path }
        }
        let trustRoots = value(self.trustRoots, "POCKET_TLS_CA")
        switch role {
        case .client:
            return trustRoots.map { TransportSecurity.Files(trustRoots: $0) }
        case .server:
            let certificate = value(self.certificate, "POCKET_TLS_CERT")
            let key = value(self.key, "POCKET_TLS_KEY")
            let given = [certificate, key, trustRoots].compactMap { $0 }.count
            guard given == 3 else {
                guard given == 0 else {
                    throw ValidationError(
                        "a server's TLS needs --tls-cert and --tls-key to serve and --tls-ca to reach the other servers "
                            + "(or POCKET_TLS_CERT, POCKET_TLS_KEY, POCKET_TLS_CA); got only "
                            + [("--tls-cert", certificate), ("--tls-key", key), ("--tls-ca", trustRoots)]
                            .filter { $0.1 != nil }.map(\.0).joined(separator: " and "))
                }
                return nil
            }
            return TransportSecurity.Files(certificate: certificate, key: key, trustRoots: trustRoots)
        }
    }

    /// Loads the files and makes them the TLS of every server and connection of this process.
    /// Call once, first thing in `run`.
    func apply(_ role: Role) throws {
        guard let files = try files(for: role) else { return }
        TransportSecurity.bootstrap(try TransportSecurity(files))
    }
}
