import ArgumentParser
import LoRACore

extension Severity: ExpressibleByArgument {}

/// `--precision fp16|bf16|fp32` as users write it.
public struct Precision: ExpressibleByArgument, Sendable {
    public let dtype: DType
    public init?(argument: String) {
        switch argument.lowercased() {
        case "fp16", "float16", "half", "f16": dtype = .f16
        case "bf16", "bfloat16": dtype = .bf16
        case "fp32", "float32", "float", "f32", "full": dtype = .f32
        default: return nil
        }
    }
    public static var allValueStrings: [String] { ["fp16", "bf16", "fp32"] }
    public static var defaultCompletionKind: CompletionKind { .list(allValueStrings) }
}

/// A LoRA argument: `path[:ratio][:unet ratio][:te=x][:unet=x][:lbw=preset|list]`.
/// Used as `transform:` so a malformed spec says what is wrong (ArgumentParser
/// shows the thrown message; `ExpressibleByArgument` could only say "invalid").
public func parseLoRASpec(_ text: String) throws -> LoRASpec {
    do {
        return try LoRASpec(parsing: text)
    } catch {
        throw ValidationError(TerminalText.escape(error.message))
    }
}

/// A core error on its way out of a tool; `ToolRun` turns it into a message
/// and the exit status of its kind (printed escaped, as ArgumentParser would
/// print it raw).
public struct ToolFailure: Error, CustomStringConvertible {
    public let error: ModelError
    public init(_ error: ModelError) { self.error = error }
    public var description: String { TerminalText.escape(error.description) }
}
