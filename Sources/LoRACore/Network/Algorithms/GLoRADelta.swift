import LinearAlgebra

/// GLoRA: ΔW = b1·b2 + W·a1·a2. The orientation changed between LyCORIS
/// versions, so factors are oriented by their shapes, not their names.
enum GLoRADelta {
    static func rebuild(_ module: NetworkModule, base: Matrix?) throws(ModelError) -> Matrix {
        guard let a1 = module["a1"], let a2 = module["a2"], let b1 = module["b1"], let b2 = module["b2"] else {
            throw ModelError(.invalid, "GLoRA module without a1/a2/b1/b2", key: module.name)
        }
        let out = module.outFeatures ?? 0
        // The "up" factor is the one with `out` rows.
        let (up, down) = b1.shape.first == out && b1.shape.count == 2 && b2.shape.first != out
            ? (b1.matrix(rows: b1.shape[0]), b2.matrix(rows: b2.shape[0]))
            : (b2.matrix(rows: b2.shape[0]), b1.matrix(rows: b1.shape[0]))
        guard up.cols == down.rows else { throw ModelError(.invalid, "GLoRA b factors do not multiply", key: module.name) }
        var result = LinearAlgebra.multiply(up, down)
        if let base {
            var (left, right) = (a1.matrix(rows: a1.shape[0]), a2.matrix(rows: a2.shape[0]))
            if left.rows != base.cols { swap(&left, &right) }
            guard left.rows == base.cols, left.cols == right.rows, right.cols == base.cols else {
                throw ModelError(.mismatch, "GLoRA a factors do not fit the base weight", key: module.name)
            }
            let wa = LinearAlgebra.multiply(LinearAlgebra.multiply(base, left), right)
            guard wa.values.count == result.values.count else { throw ModelError(.mismatch, "GLoRA parts differ in shape", key: module.name) }
            for i in result.values.indices { result.values[i] += wa.values[i] }
        }
        return result
    }
}
