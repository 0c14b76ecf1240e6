import NIOCore
import Testing

@testable import PocketMetadata
@testable import PocketProtocol

@Suite struct NamespaceTests {
    func file(_ size: UInt64, blocks: [BlockRef] = []) -> Namespace.FileData {
        Namespace.FileData(size: size, blocks: blocks)
    }

    @Test func putCreatesParentsAndListsSorted() throws {
        var namespace = Namespace()
        _ = try namespace.putFile("a/b/c", data: file(1), persist: false, now: 1)
        _ = try namespace.putFile("a/b/a", data: file(2), persist: false, now: 1)
        #expect(try namespace.list("a/b", prefix: "").map(\.name) == ["a", "c"])
        #expect(try namespace.list("/", prefix: "").map(\.kind) == [.directory])
        #expect(try namespace.resolve("a/b/a").info.size == 2)
        #expect(try namespace.list("a/b", prefix: "c").map(\.name) == ["c"])
    }

    @Test func replacingAFileReturnsItsOldBlocks() throws {
        var namespace = Namespace()
        let old = [BlockRef(id: 1, server: 1)]
        #expect(try namespace.putFile("f", data: file(10, blocks: old), persist: false, now: 1).isEmpty)
        #expect(try namespace.putFile("f", data: file(5), persist: false, now: 2) == old)
    }

    @Test func aFileCannotReplaceADirectory() throws {
        var namespace = Namespace()
        try namespace.makeDirectory("d", parents: false, now: 1)
        #expect(throws: PocketError(.isDirectory, "'d' is a directory or symlink")) {
            try namespace.putFile("d", data: file(1), persist: false, now: 1)
        }
    }

    @Test func pathsUnderAFileAreNotDirectories() throws {
        var namespace = Namespace()
        _ = try namespace.putFile("f", data: file(1), persist: false, now: 1)
        #expect { try namespace.putFile("f/g", data: file(1), persist: false, now: 1) } throws: {
            ($0 as? PocketError)?.code == .notDirectory
        }
    }

    @Test func dotDotIsRefused() {
        #expect { try Namespace.components("a/../b") } throws: { ($0 as? PocketError)?.code == .invalidArgument }
        #expect((try? Namespace.components("/a//./b/")) == ["a", "b"])
    }

    @Test func deletingANonEmptyDirectoryNeedsRecursive() throws {
        var namespace = Namespace()
        _ = try namespace.putFile("d/x", data: file(1, blocks: [BlockRef(id: 4, server: 2)]), persist: false, now: 1)
        #expect { try namespace.delete("d", recursive: false, now: 2) } throws: {
            ($0 as? PocketError)?.code == .notEmpty
        }
        #expect(try namespace.delete("d", recursive: true, now: 2) == [BlockRef(id: 4, server: 2)])
        #expect { try namespace.resolve("d/x") } throws: { ($0 as? PocketError)?.code == .notFound }
        #expect(namespace.nodes.count == 1, "only the root is left")
    }

    @Test func renameReplacesFilesAtomicallyAndReturnsTheirBlocks() throws {
        var namespace = Namespace()
        _ = try namespace.putFile("a", data: file(1, blocks: [BlockRef(id: 1, server: 1)]), persist: false, now: 1)
        _ = try namespace.putFile("b", data: file(2, blocks: [BlockRef(id: 2, server: 1)]), persist: false, now: 1)
        #expect(try namespace.rename("a", to: "b", now: 2) == [BlockRef(id: 2, server: 1)])
        #expect(try namespace.resolve("b").info.size == 1)
        #expect { try namespace.resolve("a") } throws: { ($0 as? PocketError)?.code == .notFound }
    }

    @Test func renameFollowsPosixRulesForDirectories() throws {
        var namespace = Namespace()
        try namespace.makeDirectory("x/y", parents: true, now: 1)
        try namespace.makeDirectory("empty", parents: false, now: 1)
        _ = try namespace.putFile("full/f", data: file(1), persist: false, now: 1)
        _ = try namespace.putFile("f", data: file(1), persist: false, now: 1)

        #expect { try namespace.rename("x", to: "x/y/z", now: 2) } throws: {
            ($0 as? PocketError)?.code == .invalidArgument
        }
        #expect { try namespace.rename("x", to: "full", now: 2) } throws: { ($0 as? PocketError)?.code == .notEmpty }
        #expect { try namespace.rename("x", to: "f", now: 2) } throws: { ($0 as? PocketError)?.code == .notDirectory }
        #expect { try namespace.rename("f", to: "empty", now: 2) } throws: {
            ($0 as? PocketError)?.code == .isDirectory
        }
        #expect { try namespace.rename("f", to: "missing/f", now: 2) } throws: {
            ($0 as? PocketError)?.code == .notFound
        }

        _ = try namespace.rename("x", to: "empty", now: 2)
        #expect(try namespace.resolve("empty/y").kind == .directory)
        #expect(try namespace.rename("f", to: "f", now: 3).isEmpty)
    }

    @Test func droppingAJobKeepsOnlyPersistedFiles() throws {
        var namespace = Namespace()
        _ = try namespace.putFile("keep/k", data: file(1, blocks: [BlockRef(id: 1, server: 1)]), persist: true, now: 1)
        _ = try namespace.putFile(
            "keep/tmp", data: file(1, blocks: [BlockRef(id: 2, server: 1)]), persist: false, now: 1)
        _ = try namespace.putFile("gone/x", data: file(1, blocks: [BlockRef(id: 3, server: 2)]), persist: false, now: 1)
        let (released, kept) = namespace.dropEphemeral(now: 2)
        #expect(kept == 1)
        #expect(Set(released) == [BlockRef(id: 2, server: 1), BlockRef(id: 3, server: 2)])
        #expect(try namespace.resolve("keep/k").persist)
        #expect { try namespace.resolve("gone") } throws: { ($0 as? PocketError)?.code == .notFound }
    }

    @Test func inlineBytesAreCounted() throws {
        var namespace = Namespace()
        let data = ByteBuffer(repeating: 1, count: 100)
        _ = try namespace.putFile("a", data: .init(size: 100, inline: data), persist: false, now: 1)
        _ = try namespace.putFile("b", data: .init(size: 100, inline: data), persist: false, now: 1)
        #expect(namespace.inlineBytes == 200)
        _ = try namespace.putFile("a", data: file(0), persist: false, now: 1)
        _ = try namespace.delete("b", recursive: false, now: 1)
        #expect(namespace.inlineBytes == 0)
    }

    @Test func largeDirectoriesHoldEveryEntry() throws {
        var namespace = Namespace()
        for index in 0..<20_000 {
            _ = try namespace.putFile("dir/f\(index)", data: file(1), persist: false, now: 1)
        }
        #expect(try namespace.list("dir", prefix: "").count == 20_000)
    }

    @Test func createIsExclusiveOnlyWhenAsked() throws {
        var namespace = Namespace()
        let node = try namespace.create("f", mode: 0o600, exclusive: true, now: 1)
        #expect(node.info.mode == 0o600)
        #expect { try namespace.create("f", mode: 0o600, exclusive: true, now: 1) } throws: {
            ($0 as? PocketError)?.code == .alreadyExists
        }
        #expect(try namespace.create("f", mode: 0o644, exclusive: false, now: 1).id == node.id)
        #expect { try namespace.create("missing/f", mode: 0o644, exclusive: true, now: 1) } throws: {
            ($0 as? PocketError)?.code == .notFound
        }
    }

    @Test func symlinksAndAttributes() throws {
        var namespace = Namespace()
        let link = try namespace.makeSymlink("l", target: "a/b", now: 1)
        #expect(link.info.kind == .symlink)
        #expect(link.info.symlinkTarget == "a/b")
        #expect(link.info.size == 3)
        _ = try namespace.putFile("f", data: file(1), persist: false, now: 1)
        let changed = try namespace.setAttributes("f", mode: 0o4755, modified: 42, now: 50)
        #expect(changed.info.mode == 0o4755)
        #expect(changed.info.modified == 42)
        #expect(changed.info.changed == 50)
    }

    @Test func deleteChecksTheKindLikeUnlinkAndRmdir() throws {
        var namespace = Namespace()
        try namespace.makeDirectory("d", parents: false, now: 1)
        _ = try namespace.putFile("f", data: file(1), persist: false, now: 1)
        #expect { try namespace.delete("d", recursive: false, kind: .nonDirectory, now: 2) } throws: {
            ($0 as? PocketError)?.code == .isDirectory
        }
        #expect { try namespace.delete("f", recursive: false, kind: .directory, now: 2) } throws: {
            ($0 as? PocketError)?.code == .notDirectory
        }
        _ = try namespace.delete("f", recursive: false, kind: .nonDirectory, now: 2)
        _ = try namespace.delete("d", recursive: false, kind: .directory, now: 2)
    }

    @Test func renameWithoutReplacingRefusesAnExistingTarget() throws {
        var namespace = Namespace()
        _ = try namespace.putFile("a", data: file(1), persist: false, now: 1)
        _ = try namespace.putFile("b", data: file(2), persist: false, now: 1)
        #expect { try namespace.rename("a", to: "b", noReplace: true, now: 2) } throws: {
            ($0 as? PocketError)?.code == .alreadyExists
        }
        _ = try namespace.rename("a", to: "c", noReplace: true, now: 2)
    }
}
