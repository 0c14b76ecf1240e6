import ArgumentParser
import Foundation
import PocketSecurity

/// The file holding the key a cluster's servers share (see `ClusterKey`).
struct ClusterKeyOption: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "File with the key the cluster's servers share; created (0600) when missing.",
            discussion: "Default: $POCKET_CLUSTER_KEY, else ~/.pocket/cluster.key."))
    var clusterKey: String?

    /// Loads (or creates) the key, and exports its path so servers this process starts share it.
    func load() throws -> ClusterKey {
        let path = URL(fileURLWithPath: clusterKey ?? ClusterKey.defaultPath).standardizedFileURL.path
        let key: ClusterKey
        do { key = try ClusterKey.loadOrCreate(path: path) } catch { throw ValidationError(error.message) }
        setenv("POCKET_CLUSTER_KEY", path, 1)
        return key
    }
}
