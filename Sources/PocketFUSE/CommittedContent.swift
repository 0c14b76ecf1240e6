import NIOCore
import PocketProtocol

/// A file's committed content, named by its block ids (never reused) or its inline bytes: when it is
/// unchanged at the next open, the kernel's cached pages of the file are still right.
struct CommittedContent: Equatable, Sendable {
    var size: UInt64
    var blocks: [BlockID]
    var inline: ByteBuffer?

    init(size: UInt64, blocks: [BlockID], inline: ByteBuffer?) {
        self.size = size
        self.blocks = blocks
        self.inline = inline
    }

    init(_ location: ObjectLocation) {
        self.init(size: location.size, blocks: location.blocks.map(\.id), inline: location.inline)
    }
}
