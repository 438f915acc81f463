import LinearAlgebra

/// LyCORIS "full" (a stored fine-tune difference) and norm-layer deltas: ΔW is stored as is.
enum FullDelta {
    static func rebuild(_ module: NetworkModule) throws(ModelError) -> Matrix {
        guard let stored = module["diff"] ?? module["w_norm"] else {
            throw ModelError(.invalid, "module without diff/w_norm", key: module.name)
        }
        if stored.shape.count <= 1 { return Matrix(rows: 1, cols: stored.elementCount, values: stored.floats()) }
        return stored.matrix(rows: stored.shape[0])
    }
}
