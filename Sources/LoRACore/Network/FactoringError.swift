import LinearAlgebra

extension ModelError {
    /// A failed SVD/QR of a module's ΔW or factors, as users should read it:
    /// NaN or Inf (a diverged LoRA, a broken checkpoint) named as such, with
    /// the module, rather than LAPACK's return code.
    static func factoring(_ error: any Error, module: String?) -> ModelError {
        if let error = error as? ModelError { return module.map(error.forKey) ?? error }
        if case LinearAlgebraError.nonFinite = error {
            return ModelError(.invalid, "ΔW holds NaN or Inf values (a diverged or damaged file), so it cannot be factored", key: module)
        }
        return ModelError(.invalid, "SVD failed: \(error)", key: module)
    }
}
