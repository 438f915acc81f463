import Foundation
import LoRACore

enum FileOutput {
    /// Write bytes through a temporary file renamed into place: an interrupted
    /// run never leaves a half-written image, manifest or cache entry.
    static func write(_ bytes: [UInt8], to path: String, inputs: [String] = []) throws(ModelError) {
        try AtomicOutput.write(bytes, to: path, inputs: inputs)
    }

    static func json<T: Encodable>(_ value: T) throws(ModelError) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        do {
            return Array(try encoder.encode(value)) + [10]
        } catch {
            throw ModelError(.io, "cannot encode JSON: \(error)")
        }
    }
}
