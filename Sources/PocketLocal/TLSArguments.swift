import PocketRPC

extension TransportSecurity.Files {
    /// The `pocket` options that hand these files to a child: all three to a server (it serves with
    /// the certificate and key and trusts the CA for its own connections), the CA to a client.
    func arguments(server: Bool) -> [String] {
        var arguments: [String] = []
        if server, let certificate { arguments += ["--tls-cert", certificate] }
        if server, let key { arguments += ["--tls-key", key] }
        if let trustRoots { arguments += ["--tls-ca", trustRoots] }
        return arguments
    }
}

extension Optional where Wrapped == TransportSecurity.Files {
    func arguments(server: Bool) -> [String] { self?.arguments(server: server) ?? [] }
}
