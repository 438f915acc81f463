import Foundation
import LoRACore

/// Reads a model's weights as float32, checking each tensor's shape, with
/// errors that name the file and the key.
public struct Weights: Sendable {
    public let file: ModelFile
    public var path: String { file.path }
    private let names: Set<String>
    /// Keep fp16 tensors as fp16 in `loadStore` (see WeightPrecision).
    public var halfStorage = false
    /// Keys starting with `from` are looked up with `to` instead: a standalone
    /// VAE file names `first_stage_model.decoder.…` just `decoder.…`.
    public var prefixMap: (from: String, to: String)?
    /// Records every key a layer loads (shared by copies of this value).
    public var log: KeyLog?
    /// Values that stand in for the file's, by the file's key (LoRAs merged at load: `Options.baseLoRAs`).
    public var replacements: [String: [Float]] = [:]

    /// The keys the layers asked for and the names this file gave them: what
    /// the engine reads, so run-time LoRA keys can be matched to layers and a
    /// key no layer reads is an error, not a silent no-op.
    public final class KeyLog: @unchecked Sendable {
        private let lock = NSLock()
        /// Layer key (as the engine names it) → the file's own name.
        public private(set) var resolved: [String: String] = [:]
        public init() {}
        func record(_ key: String, as name: String) {
            lock.lock(); resolved[key] = name; lock.unlock()
        }
    }

    public init(_ file: ModelFile) {
        self.file = file
        names = Set(file.tensorNames)
    }

    public func contains(_ key: String) -> Bool { resolve(key) != nil }

    /// The key as this file spells it (old SD1 files lack `text_model.`).
    public func resolve(_ key: String) -> String? {
        if let (from, to) = prefixMap, key.hasPrefix(from) {
            let mapped = to + key.dropFirst(from.count)
            return names.contains(mapped) ? mapped : nil
        }
        if names.contains(key) { return key }
        let old = key.replacingOccurrences(of: "cond_stage_model.transformer.text_model.", with: "cond_stage_model.transformer.")
        return old != key && names.contains(old) ? old : nil
    }

    public func shape(_ key: String) -> [Int]? { resolve(key).flatMap { file[$0]?.shape } }

    /// The tensor `key` as float32. `shape` is checked by element count and
    /// leading dimension, so a 1×1 conv stored as a linear weight (some SDXL
    /// VAEs) or the reverse is accepted.
    public func load(_ key: String, shape: [Int]) throws(ModelError) -> [Float] {
        guard let name = resolve(key), let tensor = file[name] else {
            throw ModelError(.mismatch, "the checkpoint has no \(key)", file: path)
        }
        log?.record(key, as: name)
        let count = shape.reduce(1, *)
        guard tensor.elementCount == count, tensor.shape.first ?? 1 == shape.first ?? 1 || shape.count <= 1 else {
            throw ModelError(.mismatch, "\(name) is \(tensor.shapeDescription), expected \(shape)", file: path, key: name)
        }
        guard tensor.dtype.isFloatingPoint else {
            throw ModelError(.mismatch, "\(name) is \(tensor.dtype.rawValue), expected a float tensor", file: path, key: name)
        }
        if let replaced = replacements[name] { return replaced }
        let values = tensor.floats()
        // The float32 copy is what the engine keeps; the mapped pages would
        // otherwise stay resident too and count twice against memory.
        tensor.file.advise(.dontNeed, offset: tensor.byteOffset, count: tensor.byteCount)
        return values
    }

    /// A layer weight: fp16 bits when `halfStorage` and the file stores the
    /// tensor as contiguous fp16, float32 otherwise.
    public func loadStore(_ key: String, shape: [Int]) throws(ModelError) -> WeightStore {
        guard halfStorage, let name = resolve(key), replacements[name] == nil, let tensor = file[name], tensor.dtype == .f16, tensor.isContiguous,
              tensor.elementCount == shape.reduce(1, *) else {
            return WeightStore(try load(key, shape: shape))
        }
        log?.record(key, as: name)
        let half = [UInt16](unsafeUninitializedCapacity: tensor.elementCount) { buffer, n in
            UnsafeMutableRawBufferPointer(buffer).copyMemory(from: tensor.rawBytes)
            n = tensor.elementCount
        }
        tensor.file.advise(.dontNeed, offset: tensor.byteOffset, count: tensor.byteCount)
        return WeightStore(half: half)
    }

    public func loadIfPresent(_ key: String, shape: [Int]) throws(ModelError) -> [Float]? {
        contains(key) ? try load(key, shape: shape) : nil
    }
}
