/// Values the restricted pickle interpreter can produce. There is no way to
/// represent a Python callable that runs: globals are resolved to the inert
/// markers of `PickleGlobal`, and the only "calls" are the fixed behaviours the
/// interpreter implements for those markers.
public indirect enum PickleValue: @unchecked Sendable {
    case none
    case bool(Bool)
    case int(Int64)
    /// An integer beyond 64 bits, kept as text; state dicts never need its value.
    case bigInt(String)
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case tuple([PickleValue])
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
        case let .tuple(items): return items
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
        case let .tuple(items): return "(tuple of \(items.count))"
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
}

public final class PickleList: @unchecked Sendable {
    public var items: [PickleValue]
    public init(_ items: [PickleValue] = []) { self.items = items }
}

/// A dict or OrderedDict, in insertion order.
public final class PickleDict: @unchecked Sendable {
    public private(set) var entries: [(key: PickleValue, value: PickleValue)] = []
    private var stringIndex: [String: Int] = [:]
    private var intIndex: [Int64: Int] = [:]
    public init() {}

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
}

public final class PickleObject: @unchecked Sendable {
    public let className: String
    public var arguments: [PickleValue]
    public var state: PickleValue?
    public init(className: String, arguments: [PickleValue]) {
        self.className = className
        self.arguments = arguments
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
