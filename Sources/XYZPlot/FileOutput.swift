import Foundation
import LoRACore

enum FileOutput {
    /// Write bytes through a temporary file renamed into place: an interrupted
    /// run never leaves a half-written image, manifest or cache entry.
    static func write(_ bytes: [UInt8], to path: String, inputs: [String] = []) throws(ModelError) {
        let folder = (path as NSString).deletingLastPathComponent
        if !folder.isEmpty && !FileManager.default.fileExists(atPath: folder) {
            do {
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            } catch {
                throw ModelError(.io, "cannot create the folder", file: folder)
            }
        }
        let output = try AtomicOutput(destination: path, inputs: inputs)
        do {
            // (A typed-throws closure here crashes the 6.3 compiler.)
            var failure: ModelError?
            bytes.withUnsafeBytes { b in
                do { try output.write(b, at: 0) } catch { failure = error as? ModelError ?? ModelError(.io, "\(error)", file: path) }
            }
            if let failure { throw failure }
            try output.commit()
        } catch let error as ModelError {
            output.abandon()
            throw error
        } catch {
            output.abandon()
            throw ModelError(.io, "\(error)", file: path)
        }
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
