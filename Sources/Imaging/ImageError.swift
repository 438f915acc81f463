/// An image that cannot be read or written, with the file it concerns.
public struct ImageError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public let path: String?

    public init(_ message: String, path: String? = nil) {
        self.message = message
        self.path = path
    }

    public var description: String { path.map { "\($0): \(message)" } ?? message }
}
