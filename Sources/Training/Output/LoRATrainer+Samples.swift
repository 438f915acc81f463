import Diffusion
import Foundation
import Imaging
import LoRACore

/// Sample images during training, rendered by the engine with the modules as
/// they are at that step (run-time adapters; nothing is saved for it), into
/// `<output dir>/sample/` under kohya's names
/// (`<name>_e000002_00_<time>_<seed>.png` after an epoch, `<name>_000500_…`
/// after a step; the seed part only when the prompt gives one), with A1111's
/// infotext so PNG Info restores the settings. A prompt without `--d` gets
/// the run's seed plus its index (kohya draws a random one).
extension LoRATrainer {
    public func renderSamples(epoch: Int?, step: Int) throws(ModelError) -> [String] {
        // The heaps keep up to a gigabyte of freed memory (EngineAllocator) from the training steps before a sample,
        // and from the sampler and the VAE decoder after it; handing both back keeps that memory from stacking on
        // the decoder's peak, and the decoder's from staying resident through the steps that follow.
        EngineAllocator.returnFreedMemory()
        defer { EngineAllocator.returnFreedMemory() }
        let folder = (configuration.outputDirectory as NSString).appendingPathComponent("sample")
        let pipeline = Pipeline(model: model, precision: configuration.computePrecision)
        let adapters = try network.adapters(for: model)
        let stamp: String = {
            let f = DateFormatter()
            f.dateFormat = "yyyyMMddHHmmss"
            return f.string(from: Date())
        }()
        var written: [String] = []
        for (index, prompt) in configuration.samplePrompts.enumerated() {
            let samplerName = prompt.sampler ?? configuration.sampleSampler
            guard let sampler = SamplePrompt.sampler(named: samplerName) else {
                throw ModelError(.unsupported, "sample sampler \(samplerName) is not available (\(SamplePrompt.samplerNames.joined(separator: ", ")))")
            }
            var p = GenerationParameters(prompt: prompt.prompt, negativePrompt: prompt.negative, seed: prompt.seed ?? (configuration.seed &+ UInt64(index)),
                                         steps: prompt.steps, cfgScale: prompt.scale, sampler: sampler, width: prompt.width, height: prompt.height,
                                         clipSkip: configuration.clipSkip ?? 1)
            p.noise = .avx2
            let image = try pipeline.render(p, adapters: adapters)
            let infotext = Infotext(p, model: Infotext.Model(hash: String(modelHashes.sha256.prefix(10)),
                                                             name: ((model.path as NSString).lastPathComponent as NSString).deletingPathExtension),
                                    extra: [("LoRA training", "\(configuration.outputName) step \(step)" + (epoch.map { " epoch \($0)" } ?? ""))])
            let number = epoch.map { String(format: "e%06d", $0) } ?? String(format: "%06d", step)
            let name = "\(configuration.outputName)_\(number)_\(String(format: "%02d", index))_\(stamp)" + (prompt.seed.map { "_\($0)" } ?? "") + ".png"
            let path = (folder as NSString).appendingPathComponent(name)
            let png: [UInt8]
            do {
                png = try PNGCodec.encode(Bitmap(width: image.width, height: image.height, pixels: image.pixels), text: [(key: "parameters", value: infotext.text)])
            } catch {
                throw ModelError(.io, "cannot encode the sample image: \(error.message)", file: path)
            }
            try AtomicOutput.write(png, to: path)
            written.append(path)
        }
        return written
    }
}
