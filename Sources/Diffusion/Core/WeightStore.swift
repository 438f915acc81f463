import CKernels
import Foundation
import LoRACore

/// How the engine keeps the big weights (linear and convolution layers).
public enum WeightPrecision: String, Sendable, CaseIterable {
    /// float32 when the model fits comfortably in memory, else the file's fp16.
    case automatic
    /// float32: fastest, 4 bytes per parameter (SD1.5 ≈ 4.3 GB, SDXL ≈ 14 GB).
    case f32
    /// The checkpoint's fp16 values, widened to float32 per layer call: half
    /// the memory for ~5% more time. Only fp16 tensors are kept this way.
    case f16
}

/// A layer's weight: float32 values, or fp16 bits widened on each use.
/// Widening fp16 is exact, so both give the same results bit for bit.
public struct WeightStore: Sendable {
    enum Storage: Sendable {
        case f32([Float])
        case f16([UInt16])
    }

    let storage: Storage

    public init(_ values: [Float]) { storage = .f32(values) }
    public init(half: [UInt16]) { storage = .f16(half) }

    public var count: Int {
        switch storage {
        case .f32(let v): return v.count
        case .f16(let h): return h.count
        }
    }

    public var isHalf: Bool {
        if case .f16 = storage { return true }
        return false
    }

    /// The values as float32: the stored array itself, or a widened copy.
    public func floats() -> [Float] {
        switch storage {
        case .f32(let values):
            return values
        case .f16(let half):
            return [Float](unsafeUninitializedCapacity: half.count) { buffer, n in
                half.withUnsafeBytes { lt_f16_to_f32($0.baseAddress, buffer.baseAddress, half.count) }
                n = half.count
            }
        }
    }

    /// Several stores end to end (packed q/k/v): half only if all are.
    static func concatenate(_ parts: [WeightStore]) -> WeightStore {
        var halves: [UInt16] = []
        for part in parts {
            guard case .f16(let h) = part.storage else { return WeightStore(parts.flatMap { $0.floats() }) }
            halves += h
        }
        return WeightStore(half: halves)
    }
}
