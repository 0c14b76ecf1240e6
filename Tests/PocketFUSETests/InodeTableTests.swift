import Testing

@testable import PocketFUSE

@Suite struct InodeTableTests {
    @Test func numbersAreStableWhileLookedUpAndGoWhenForgotten() {
        var table = InodeTable()
        let a = table.number(job: "j", path: "a", lookup: true)
        #expect(table.number(job: "j", path: "a", lookup: true) == a)
        #expect(table.number(job: "k", path: "a", lookup: false) != a, "jobs have their own names")
        table.forget(a, count: 1)
        #expect(table.entry(a) != nil)
        table.forget(a, count: 1)
        #expect(table.entry(a) == nil)
        #expect(table.number(job: "j", path: "a", lookup: true) != a, "a forgotten number is not reused")
    }

    @Test func renamesMoveEverythingBelow() {
        var table = InodeTable()
        let dir = table.number(job: "j", path: "d", lookup: true)
        let file = table.number(job: "j", path: "d/x/f", lookup: true)
        let other = table.number(job: "j", path: "dd", lookup: true)
        table.rename(job: "j", from: "d", to: "e/d")
        #expect(table.entry(dir)?.path == "e/d")
        #expect(table.entry(file)?.path == "e/d/x/f")
        #expect(table.entry(other)?.path == "dd", "a sibling sharing a prefix stays")
        #expect(table.existing(job: "j", path: "d") == nil)
        #expect(table.existing(job: "j", path: "e/d/x/f") == file)
    }

    @Test func aFileChangedElsewhereGetsAFreshNumberUnlessOpenHere() {
        var table = InodeTable()
        let first = table.fileNumber(job: "j", path: "f", changed: 10) { _ in false }
        #expect(table.fileNumber(job: "j", path: "f", changed: 10) { _ in false } == first, "unchanged: same inode")
        #expect(table.fileNumber(job: "j", path: "f", changed: 11) { _ in true } == first, "open here: kept")
        let fresh = table.fileNumber(job: "j", path: "f", changed: 11) { _ in false }
        #expect(fresh != first, "closed since: the change seen while open still leaves the cached inode behind")
        table.noteChange(fresh, changed: 12)
        #expect(table.fileNumber(job: "j", path: "f", changed: 12) { _ in false } == fresh, "this mount's own commit")
        #expect(table.entry(first)?.path == "f", "the old number still names the file for handles on it")
        #expect(table.existing(job: "j", path: "f") == fresh)
    }

    @Test func aRenameOverAnEntryDetachesIt() {
        var table = InodeTable()
        let source = table.number(job: "j", path: "a", lookup: true)
        let target = table.number(job: "j", path: "b", lookup: true)
        table.rename(job: "j", from: "a", to: "b")
        #expect(table.existing(job: "j", path: "b") == source)
        #expect(table.entry(target) != nil, "the kernel still holds the replaced inode")
    }

    @Test func theRootIsNeverForgotten() {
        var table = InodeTable()
        table.forget(InodeTable.root, count: 100)
        #expect(table.entry(InodeTable.root)?.job == nil)
    }
}
