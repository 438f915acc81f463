/// An error about a model file or its contents, carrying where it happened.
///
/// Readers and algorithms throw these; only the executables turn them into
/// messages and exit codes. The description is always one line.
public struct ModelError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: String, Sendable, Codable {
        /// The file could not be opened or read (missing, permissions, I/O).
        case io
        /// The bytes do not form a valid file of the claimed format.
        case invalid
        /// Valid, but a feature this tool does not handle.
        case unsupported
        /// A pickle that would run code or reference something outside the allowlist.
        case dangerous
        /// The request does not fit the data (wrong shapes, wrong family, bad arguments).
        case mismatch
    }

    public var kind: Kind
    public var message: String
    public var file: String?
    public var key: String?
    public var offset: UInt64?

    public init(_ kind: Kind, _ message: String, file: String? = nil, key: String? = nil, offset: UInt64? = nil) {
        self.kind = kind
        self.message = message
        self.file = file
        self.key = key
        self.offset = offset
    }

    /// The same error, attributed to a file (keeps an existing attribution).
    public func inFile(_ path: String) -> ModelError {
        var copy = self
        if copy.file == nil { copy.file = path }
        return copy
    }

    public func forKey(_ key: String) -> ModelError {
        var copy = self
        if copy.key == nil { copy.key = key }
        return copy
    }

    public var description: String {
        var parts: [String] = []
        if let file { parts.append(file) }
        var detail = message
        var location: [String] = []
        if let key { location.append("key '\(key)'") }
        if let offset { location.append("byte offset \(offset)") }
        if !location.isEmpty { detail += " (" + location.joined(separator: ", ") + ")" }
        parts.append(detail)
        // Keep it on one line whatever the message contains.
        return parts.joined(separator: ": ").replacingNewlines()
    }
}

extension String {
    func replacingNewlines() -> String {
        String(self.map { $0 == "\n" || $0 == "\r" ? " " : $0 })
    }
}

/// Run a closure through a `rethrows` API (which erases error types) and get
/// the `ModelError` back out.
@inline(__always)
public func rethrowingModelError<T>(_ body: () throws -> T) throws(ModelError) -> T {
    do {
        return try body()
    } catch let error as ModelError {
        throw error
    } catch {
        throw ModelError(.io, String(describing: error))
    }
}
