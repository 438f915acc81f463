import LinearAlgebra
import LoRACore

extension Linear {
    /// y = x·Wᵀ + b backward. x: [rows, in] (the forward's input), dy: [rows, out].
    ///   dx = dy·W          [rows, in]
    ///   dW += dyᵀ·x        [out, in]   (when `weightGradient`)
    ///   db += Σ_rows dy    [out]       (when `biasGradient`)
    /// LoRA side paths are not differentiated here (a frozen layer's adapters
    /// are baked or absent while training; the trained network has its own modules).
    public func backward(input x: Tensor, outputGradient dy: Tensor, weightGradient: Gradient? = nil, biasGradient: Gradient? = nil) -> Tensor {
        let rows = x.count / inFeatures
        precondition(dy.count == rows * outFeatures, "Linear.backward: dy has \(dy.count) values, expected \(rows)×\(outFeatures)")
        var dx = Tensor.uninitialized(x.shape)
        let w = store.floats()
        let flops = 2 * Double(rows * inFeatures * outFeatures) * (weightGradient == nil ? 1 : 2)
        EngineProfile.measure(.linearBackward, flops: flops) {
        x.withPointer { xp in dy.withPointer { dyp in dx.withMutablePointer { dxp in w.withUnsafeBufferPointer { wp in
            LinearAlgebra.gemm(m: rows, n: inFeatures, k: outFeatures, a: dyp, lda: outFeatures, b: wp.baseAddress!, ldb: inFeatures,
                               c: dxp, ldc: inFeatures)
            weightGradient?.withPointer { g in
                LinearAlgebra.gemm(transposeA: true, m: outFeatures, n: inFeatures, k: rows, a: dyp, lda: outFeatures, b: xp, ldb: inFeatures,
                                   beta: 1, c: g, ldc: inFeatures)
            }
            if let biasGradient { accumulateRowSums(dyp, rows: rows, width: outFeatures, into: biasGradient) }
        } } } }
        }
        return dx
    }
}

extension Linear {
    /// One packed part's weight and bias gradients: its rows of dW are the
    /// contiguous block dy[:, rows]ᵀ·x, so each part's GEMM writes its own buffer.
    func accumulatePartGradients(_ part: Part, input x: Tensor, outputGradient dy: Tensor, weight: Gradient?, bias: Gradient?) {
        guard weight != nil || bias != nil else { return }
        let rows = x.count / inFeatures
        x.withPointer { xp in dy.withPointer { dyp in
            let columns = dyp + part.rows.lowerBound
            weight?.withPointer { g in
                LinearAlgebra.gemm(transposeA: true, m: part.rows.count, n: inFeatures, k: rows, a: columns, lda: outFeatures, b: xp,
                                   ldb: inFeatures, beta: 1, c: g, ldc: inFeatures)
            }
            guard let bias else { return }
            bias.withPointer { g in
                for j in 0..<part.rows.count {
                    var sum = 0.0
                    for r in 0..<rows { sum += Double(columns[r * outFeatures + j]) }
                    g[j] += Float(sum)
                }
            }
        } }
    }
}
