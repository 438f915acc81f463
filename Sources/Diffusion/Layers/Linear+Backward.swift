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
