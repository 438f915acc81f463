import LoRACore

/// A request that does not make a plan: a value list that does not parse, a
/// parameter on two axes, a Prompt S/R that finds nothing. These are errors in
/// what the user asked for (lora-xyz reports them as usage errors, exit 64),
/// kept apart from `ModelError`, which is about files and their contents.
public struct RequestError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }

    /// Runs a step that reports in `ModelError` terms (a spec, a block-weight
    /// list) and reports its failure as a request error.
    static func wrapping<T>(_ body: () throws(ModelError) -> T) throws(RequestError) -> T {
        do {
            return try body()
        } catch {
            throw RequestError(error.message)
        }
    }
}
