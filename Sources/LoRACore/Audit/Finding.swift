/// How serious a finding is; `--fail-on` compares against this order.
public enum Severity: String, Sendable, Codable, Comparable, CaseIterable {
    case info
    case warning
    case error

    private var rank: Int {
        switch self {
        case .info: return 0
        case .warning: return 1
        case .error: return 2
        }
    }

    public static func < (a: Severity, b: Severity) -> Bool { a.rank < b.rank }
}

/// One named observation about a file. `code` is stable for scripts.
public struct Finding: Sendable, Codable, Equatable {
    public var code: String
    public var severity: Severity
    public var message: String
    /// Keys or modules concerned (first few), when the finding is about specific ones.
    public var keys: [String]?
    public var count: Int?

    public init(_ code: String, _ severity: Severity, _ message: String, keys: [String]? = nil, count: Int? = nil) {
        self.code = code
        self.severity = severity
        self.message = message
        self.keys = keys.map { Array($0.prefix(Finding.maxKeys)) }
        self.count = count ?? keys.map(\.count)
    }

    static let maxKeys = 8
}
