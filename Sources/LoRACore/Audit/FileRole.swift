/// A LoRA given where a checkpoint goes, or the other way round, is a common
/// slip; say what the file is instead of reporting the missing keys it lacks.
extension ModelFile {
    /// Throws when this file is a LoRA (or a VAE / embedding) rather than a checkpoint.
    public func requireCheckpoint() throws(ModelError) {
        guard let network = try? NetworkFile(model: self) else { return }
        switch Inspector.kind(of: self, network: network) {
        case .lora:
            throw ModelError(.mismatch, "this is a LoRA (\(network.modules.count) modules), not a checkpoint", file: path)
        case .vae, .embedding:
            throw ModelError(
                .mismatch, "this is a \(Inspector.kind(of: self, network: network) == .vae ? "VAE" : "textual-inversion embedding"), not a checkpoint",
                file: path)
        default:
            return
        }
    }
}

extension ModelError {
    /// The error for a file with no LoRA modules, saying what it is when that is known.
    static func notALoRA(_ model: ModelFile, network: NetworkFile) -> ModelError {
        switch Inspector.kind(of: model, network: network) {
        case .checkpoint: return ModelError(.mismatch, "this is a Stable Diffusion checkpoint, not a LoRA", file: model.path)
        case .vae: return ModelError(.mismatch, "this is a VAE, not a LoRA", file: model.path)
        case .embedding: return ModelError(.mismatch, "this is a textual-inversion embedding, not a LoRA", file: model.path)
        default: return ModelError(.mismatch, "not a LoRA: no LoRA modules found", file: model.path)
        }
    }
}
