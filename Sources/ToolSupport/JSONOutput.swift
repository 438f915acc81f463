import Foundation

/// JSON for scripts: stable key order, pretty-printed, slashes unescaped.
/// NaN and ±Inf (a diverged LoRA's norms) are written as `null`, as
/// JavaScript's JSON.stringify does: JSON has no such numbers, and a string
/// "nan" in a number field breaks the scripts that read it.
public enum JSONOutput {
    /// Stands in for non-finite numbers until they are replaced by null; the
    /// control character makes it encode as text no file can be expected to hold.
    private static let nonFinite = "\u{1}lora-tools-non-finite\u{1}"

    public static func string<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: nonFinite, negativeInfinity: nonFinite, nan: nonFinite)
        let text = String(decoding: try encoder.encode(value), as: UTF8.self)
        return text.replacingOccurrences(of: "\"\\u0001lora-tools-non-finite\\u0001\"", with: "null")
    }
}
