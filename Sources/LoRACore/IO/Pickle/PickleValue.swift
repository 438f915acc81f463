/// Values the restricted pickle interpreter can produce. There is no way to
/// represent a Python callable that runs: globals are resolved to the inert
/// markers of `PickleGlobal`, and the only "calls" are the fixed behaviours the
/// interpreter implements for those markers.
///
/// Every container is a class (`PickleContainer`): a hostile pickle can nest
/// them tens of thousands deep, and a recursive release of such a tree
/// overflows the stack. Containers release their children iteratively
/// (`PickleTeardown`), and the machine refuses nesting deeper than
/// `PickleMachine.maxDepth` in the first place.
public enum PickleValue: @unchecked Sendable {
    case none
    case bool(Bool)
    case int(Int64)
    /// An integer beyond 64 bits, kept as text; state dicts never need its value.
    case bigInt(String)
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case tuple(PickleTuple)
    case list(PickleList)
    case dict(PickleDict)
    case set(PickleList)
    /// A reference to an allowlisted global (a class or rebuild function).
    case global(PickleGlobal)
    case storage(PickleStorage)
    case tensor(PickleTensor)
    /// An instance of an allowlisted class whose state is recorded, never run
    /// (Lightning callbacks, NumPy scalars in training checkpoints).
    case object(PickleObject)
    /// A global that is not on the allowlist; only seen while scanning.
    case rejected(String)

    public var int: Int64? {
        switch self {
        case let .int(v): return v
        case let .bool(b): return b ? 1 : 0
        default: return nil
        }
    }

    public var string: String? {
        if case let .string(s) = self { return s }
        return nil
    }

    /// The items of a tuple or list.
    public var sequence: [PickleValue]? {
        switch self {
        case let .tuple(tuple): return tuple.items
        case let .list(list): return list.items
        default: return nil
        }
    }

    /// A short human description for reports of non-tensor entries.
    public var summary: String {
        switch self {
        case .none: return "None"
        case let .bool(b): return b ? "True" : "False"
        case let .int(v): return String(v)
        case let .bigInt(text): return text
        case let .float(v): return String(v)
        case let .string(s): return s.count > 80 ? String(s.prefix(77)) + "..." : s
        case let .bytes(b): return "<\(b.count) bytes>"
        case let .tuple(tuple): return "(tuple of \(tuple.items.count))"
        case let .list(list): return "[list of \(list.items.count)]"
        case let .dict(dict): return "{dict of \(dict.entries.count)}"
        case let .set(list): return "{set of \(list.items.count)}"
        case let .global(g): return "<\(g.qualifiedName)>"
        case .storage: return "<storage>"
        case let .tensor(t): return "<tensor \(t.shape)>"
        case let .object(o): return "<\(o.className) object>"
        case let .rejected(name): return "<refused global \(name)>"
        }
    }

    /// The container object behind a value, if it is one.
    var container: PickleContainer? {
        switch self {
        case let .tuple(c): return c
        case let .list(c), let .set(c): return c
        case let .dict(c): return c
        case let .object(c): return c
        default: return nil
        }
    }

    /// Levels of containers in this value as last recorded (0 for scalars,
    /// tensors and storages).
    var depth: Int { container?.depth ?? 0 }
}

/// What every container shares: its nesting depth as the machine recorded
/// it, and an iterative release of its children.
public class PickleContainer: @unchecked Sendable {
    /// 1 + the deepest child when last updated by the machine.
    public internal(set) var depth = 1

    /// Hands over the children and forgets them (for `PickleTeardown`).
    func takeChildren(into pending: inout [PickleValue]) {}
}

/// Releases values one level at a time: a container that nothing else holds
/// hands its children to a work list before it is freed, so freeing a tree of
/// any depth uses constant stack. Shared containers are left to their other
/// holders, so each container is visited once.
enum PickleTeardown {
    /// Called from each container's own deinit: Swift destroys a subclass's
    /// stored properties before its superclass's deinit runs, so this cannot
    /// live in `PickleContainer`.
    static func dismantle(_ container: PickleContainer) {
        var pending: [PickleValue] = []
        container.takeChildren(into: &pending)
        release(&pending)
    }

    static func release(_ pending: inout [PickleValue]) {
        while let value = pending.popLast() {
            guard var container = value.container else { continue }
            // `value` is gone after this loop step; `container` then holds the
            // last reference if nothing else does.
            _ = consume value
            if isKnownUniquelyReferenced(&container) { container.takeChildren(into: &pending) }
        }
    }
}

public final class PickleTuple: PickleContainer, @unchecked Sendable {
    public private(set) var items: [PickleValue]
    public init(_ items: [PickleValue] = []) { self.items = items }
    deinit { PickleTeardown.dismantle(self) }

    override func takeChildren(into pending: inout [PickleValue]) {
        pending.append(contentsOf: items)
        items = []
    }
}

public final class PickleList: PickleContainer, @unchecked Sendable {
    public var items: [PickleValue]
    public init(_ items: [PickleValue] = []) { self.items = items }
    deinit { PickleTeardown.dismantle(self) }

    override func takeChildren(into pending: inout [PickleValue]) {
        pending.append(contentsOf: items)
        items = []
    }
}

/// A dict or OrderedDict, in insertion order.
public final class PickleDict: PickleContainer, @unchecked Sendable {
    public private(set) var entries: [(key: PickleValue, value: PickleValue)] = []
    private var stringIndex: [String: Int] = [:]
    private var intIndex: [Int64: Int] = [:]
    public override init() {}

    public func set(_ key: PickleValue, _ value: PickleValue) {
        switch key {
        case let .string(s):
            if let i = stringIndex[s] { entries[i].value = value; return }
            stringIndex[s] = entries.count
        case let .int(v):
            if let i = intIndex[v] { entries[i].value = value; return }
            intIndex[v] = entries.count
        default:
            break // other keys are kept in order without de-duplication
        }
        entries.append((key: key, value: value))
    }

    public subscript(key: String) -> PickleValue? {
        stringIndex[key].map { entries[$0].value }
    }

    deinit { PickleTeardown.dismantle(self) }

    override func takeChildren(into pending: inout [PickleValue]) {
        for entry in entries { pending.append(entry.key); pending.append(entry.value) }
        entries = []
    }
}

public final class PickleObject: PickleContainer, @unchecked Sendable {
    public let className: String
    public var arguments: [PickleValue]
    public var state: PickleValue?
    public init(className: String, arguments: [PickleValue]) {
        self.className = className
        self.arguments = arguments
    }

    deinit { PickleTeardown.dismantle(self) }

    override func takeChildren(into pending: inout [PickleValue]) {
        pending.append(contentsOf: arguments)
        arguments = []
        if let state { pending.append(state) }
        state = nil
    }
}

/// A storage named by a persistent id: which record holds its bytes.
public struct PickleStorage: Sendable {
    public let key: String
    /// nil for `torch.UntypedStorage`, whose dtype comes from `_rebuild_tensor_v3`.
    public let dtype: DType?
    /// Elements (bytes for untyped storages) the pickle claims it holds.
    public let count: Int
    /// Legacy format only: a view into a root storage (offset in elements).
    public let viewOffset: Int
}

/// A tensor as `_rebuild_tensor_v2/v3` describes it: a strided view on a storage.
public struct PickleTensor: Sendable {
    public let storage: PickleStorage
    public let dtype: DType
    /// In elements of `dtype`.
    public let storageOffset: Int
    public let shape: [Int]
    public let strides: [Int]
}
