import ArgumentParser
import Foundation
import Logging
import PocketClient
import PocketFUSE

extension Pocket {
    struct Mount: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Mount Pocket at a directory: one subdirectory per job (FUSE).")

        @Argument(help: "Where to mount.") var directory = "/pocket"
        @OptionGroup var controller: ControllerOption
        @Option(help: "Seconds the kernel may cache attributes and names.") var attributeTimeout = 1.0
        @OptionGroup var log: LogOptions
        @OptionGroup var daemon: DaemonOptions
        @OptionGroup var tls: TLSOptions

        func run() async throws {
            let logger = log.bootstrap(label: "pocket.mount")
            try tls.apply(.client)
            let endpoint = try controller.endpoint
            let client = PocketClient(controller: endpoint)
            var settings = PocketFilesystem.Settings()
            settings.attributeTimeout = attributeTimeout
            settings.entryTimeout = attributeTimeout
            let filesystem = PocketFilesystem(
                client: client, tokens: TokenStore(controller: endpoint), settings: settings, logger: logger)
            let mount = try FuseMount.mount(at: directory, filesystem: filesystem, logger: logger)
            logger.info("mounted Pocket (controller \(endpoint)) at \(mount.mountpoint)")
            try await daemon.run([mount], announcing: mount.mountpoint, logger: logger)
            await client.close()
        }
    }
}
