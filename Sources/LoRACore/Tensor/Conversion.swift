import CKernels

/// Bulk conversion between element types. F16 and BF16 go through the C
/// kernels (F16C/AVX2 when the CPU has them); everything else is a plain loop.
public enum Conversion {
    /// Convert `count` contiguous elements of `dtype` starting at `src` to Float.
    public static func toFloat(_ src: UnsafeRawBufferPointer, dtype: DType, count: Int,
                               into dst: UnsafeMutableBufferPointer<Float>) {
        precondition(src.count >= count * dtype.size && dst.count >= count)
        guard count > 0, let s = src.baseAddress, let d = dst.baseAddress else { return }
        switch dtype {
        case .f32:
            d.withMemoryRebound(to: UInt8.self, capacity: count * 4) { out in
                out.update(from: s.assumingMemoryBound(to: UInt8.self), count: count * 4)
            }
        case .f16: lt_f16_to_f32(s, d, count)
        case .bf16: lt_bf16_to_f32(s, d, count)
        case .f64:
            for i in 0..<count { d[i] = Float(Double(bitPattern: src.loadLE(UInt64.self, at: 8 * i))) }
        case .f8e4m3:
            for i in 0..<count { d[i] = float8E4M3(src[i]) }
        case .f8e5m2:
            for i in 0..<count { d[i] = float8E5M2(src[i]) }
        case .bool, .u8:
            for i in 0..<count { d[i] = Float(src[i]) }
        case .i8:
            for i in 0..<count { d[i] = Float(Int8(bitPattern: src[i])) }
        case .i16:
            for i in 0..<count { d[i] = Float(src.loadLE(Int16.self, at: 2 * i)) }
        case .u16:
            for i in 0..<count { d[i] = Float(src.loadLE(UInt16.self, at: 2 * i)) }
        case .i32:
            for i in 0..<count { d[i] = Float(src.loadLE(Int32.self, at: 4 * i)) }
        case .u32:
            for i in 0..<count { d[i] = Float(src.loadLE(UInt32.self, at: 4 * i)) }
        case .i64:
            for i in 0..<count { d[i] = Float(src.loadLE(Int64.self, at: 8 * i)) }
        case .u64:
            for i in 0..<count { d[i] = Float(src.loadLE(UInt64.self, at: 8 * i)) }
        }
    }

    /// Convert Floats to `dtype` bytes, rounding to nearest even as torch does (float8 as torch's
    /// `.to()`: e4m3fn saturates at ±448, e5m2 overflows to ±inf).
    public static func fromFloat(_ src: UnsafeBufferPointer<Float>, to dtype: DType,
                                 into dst: UnsafeMutableRawBufferPointer) throws(ModelError) {
        let count = src.count
        guard dst.count >= count * dtype.size else {
            throw ModelError(.invalid, "conversion buffer too small")
        }
        guard count > 0, let s = src.baseAddress, let d = dst.baseAddress else { return }
        switch dtype {
        case .f32:
            d.copyMemory(from: s, byteCount: count * 4)
        case .f16: lt_f32_to_f16(s, d, count)
        case .bf16: lt_f32_to_bf16(s, d, count)
        case .f8e4m3: lt_f32_to_f8e4m3(s, d, count)
        case .f8e5m2: lt_f32_to_f8e5m2(s, d, count)
        case .f64:
            for i in 0..<count { dst.storeBytes(of: Double(s[i]).bitPattern.littleEndian, toByteOffset: 8 * i, as: UInt64.self) }
        default:
            throw ModelError(.unsupported, "writing \(dtype.rawValue) from float values is not supported")
        }
    }

    /// Decode one float8 e4m3fn value (bias 7, no infinities, S.1111.111 is NaN).
    public static func float8E4M3(_ byte: UInt8) -> Float {
        let sign: Float = byte & 0x80 != 0 ? -1 : 1
        let exponent = Int((byte >> 3) & 0x0F)
        let mantissa = Float(byte & 0x07)
        if exponent == 15 && byte & 0x07 == 7 { return byte & 0x80 != 0 ? -Float.nan : .nan } // keeps its sign, as torch
        if exponent == 0 { return sign * mantissa / 8 * Float(sign: .plus, exponent: -6, significand: 1) }
        return sign * (1 + mantissa / 8) * Float(sign: .plus, exponent: exponent - 7, significand: 1)
    }

    /// Decode one float8 e5m2 value: the top byte of an IEEE half.
    public static func float8E5M2(_ byte: UInt8) -> Float {
        var half = UInt16(byte) << 8
        var out: Float = 0
        lt_f16_to_f32_scalar(&half, &out, 1)
        return out
    }
}

extension TensorView {
    /// All elements as Float in row-major order, whatever the dtype and strides.
    public func floats() -> [Float] {
        let count = elementCount
        guard count > 0 else { return [] }
        if isContiguous {
            return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                Conversion.toFloat(rawBytes, dtype: dtype, count: count, into: buffer)
                initialized = count
            }
        }
        // Strided view (torch checkpoints may hold transposed or sliced views):
        // gather element by element in row-major order.
        let elementSize = dtype.size
        let steps = strides ?? TensorView.contiguousStrides(shape)
        var gathered = [UInt8](repeating: 0, count: count * elementSize)
        let bytes = rawBytes
        var index = [Int](repeating: 0, count: shape.count)
        gathered.withUnsafeMutableBytes { out in
            for flat in 0..<count {
                var offset = 0
                for axis in 0..<shape.count { offset += index[axis] * steps[axis] }
                out.baseAddress!.advanced(by: flat * elementSize)
                    .copyMemory(from: bytes.baseAddress!.advanced(by: offset * elementSize), byteCount: elementSize)
                var axis = shape.count - 1
                while axis >= 0 {
                    index[axis] += 1
                    if index[axis] < shape[axis] { break }
                    index[axis] = 0
                    axis -= 1
                }
            }
        }
        return gathered.withUnsafeBytes { raw in
            [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                Conversion.toFloat(raw, dtype: dtype, count: count, into: buffer)
                initialized = count
            }
        }
    }

    /// A scalar (or the first element) as Double; used for alpha tensors.
    public func scalarValue() -> Double? {
        guard elementCount >= 1 else { return nil }
        let bytes = rawBytes
        switch dtype {
        case .f64: return Double(bitPattern: bytes.loadLE(UInt64.self, at: 0))
        case .i64: return Double(bytes.loadLE(Int64.self, at: 0))
        case .u64: return Double(bytes.loadLE(UInt64.self, at: 0))
        case .i32: return Double(bytes.loadLE(Int32.self, at: 0))
        default:
            var value: Float = 0
            withUnsafeMutablePointer(to: &value) { p in
                Conversion.toFloat(bytes, dtype: dtype, count: 1, into: UnsafeMutableBufferPointer(start: p, count: 1))
            }
            return Double(value)
        }
    }
}
