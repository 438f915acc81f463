/// The complete audit of one file, as `lora-inspect` prints it (text or JSON).
public struct InspectionReport: Sendable, Codable {
    public enum Kind: String, Sendable, Codable {
        case lora, checkpoint, vae, embedding, unknown
        /// Unreadable or not a valid model file.
        case invalid
        /// A pickle that references code: never loaded.
        case dangerous
    }

    public struct Failure: Sendable, Codable, Equatable {
        public var kind: String
        public var message: String
    }

    public var path: String
    public var size: Int
    public var format: ModelFormat?
    public var kind: Kind
    public var tensors: Int
    /// A1111's legacy model hash (cheap: 64 KiB), always present for readable files.
    public var legacyHash: String?
    /// Full-file and data hashes (AutoV2/AutoV3), when computed.
    public var hashes: FileHashes?
    public var lora: LoRAReport?
    public var checkpoint: CheckpointReport?
    public var training: TrainingSummary?
    public var metadata: [String: String]?
    public var findings: [Finding]
    public var failure: Failure?

    /// The worst severity among findings.
    public var worstSeverity: Severity? { findings.map(\.severity).max() }

    /// 0 clean, 1 findings at or above `failOn`, 2 unreadable or invalid, 3 dangerous pickle.
    public func exitCode(failOn: Severity) -> Int32 {
        switch kind {
        case .dangerous: return 3
        case .invalid: return 2
        default: return findings.contains { $0.severity >= failOn } ? 1 : 0
        }
    }
}

public enum Inspector {
    public struct Options: Sendable {
        /// nil: decide by kind (LoRAs yes, checkpoints no: a 6 GB hash is not "instant").
        public var hashes: Bool?
        /// nil: decide by kind (LoRAs yes, checkpoints only when asked).
        public var scanValues: Bool?
        public var effectiveRank = false
        public var topTags = 20
        public init(hashes: Bool? = nil, scanValues: Bool? = nil, effectiveRank: Bool = false, topTags: Int = 20) {
            self.hashes = hashes
            self.scanValues = scanValues
            self.effectiveRank = effectiveRank
            self.topTags = topTags
        }
    }

    /// Byte-level progress: called with the number of bytes just processed, and
    /// once up front with the total (as a negative number) so a bar can size itself.
    public typealias Progress = @Sendable (Int) -> Void

    /// Audit one file. Never throws: unreadable and dangerous files become
    /// reports of kind `.invalid` / `.dangerous` with the error as a finding.
    public static func inspect(path: String, options: Options = Options(), progress: Progress? = nil) -> InspectionReport {
        var report = InspectionReport(path: path, size: 0, format: nil, kind: .invalid, tensors: 0, findings: [])
        let model: ModelFile
        do {
            model = try ModelFile.open(path)
        } catch {
            report.kind = error.kind == .dangerous ? .dangerous : .invalid
            report.failure = .init(kind: error.kind.rawValue, message: error.description)
            let code = error.kind == .dangerous ? "dangerous-pickle" : (error.kind == .unsupported ? "unsupported" : "unreadable")
            report.findings = [Finding(code, .error, error.description)]
            return report
        }
        report.size = model.file.size
        report.format = model.format
        report.tensors = model.tensors.count
        report.legacyHash = Hashing.legacyModelHash(model.file)
        if !model.metadata.isEmpty {
            report.metadata = Dictionary(model.metadata.pairs.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
        }

        do {
            let network = try NetworkFile(model: model)
            report.kind = kind(of: model, network: network)
            let isLoRA = report.kind == .lora
            let wantHashes = options.hashes ?? (isLoRA || model.file.size < 64 << 20)
            let wantScan = options.scanValues ?? isLoRA
            var total = 0
            if wantHashes { total += model.file.size }
            if wantScan { total += model.tensors.filter(\.dtype.isFloatingPoint).reduce(0) { $0 + $1.byteCount } }
            if total > 0 { progress?(-total) }
            if wantHashes { report.hashes = Hashing.hashes(of: model, progress: progress) }

            switch report.kind {
            case .lora:
                let (lora, findings) = try LoRAAnalysis.analyze(network, options: .init(scanValues: wantScan, effectiveRank: options.effectiveRank),
                                                               progress: progress)
                report.lora = lora
                report.findings += findings
            case .checkpoint:
                let stats = wantScan ? TensorScan.scan(model.tensors, progress: progress) : nil
                let (checkpoint, findings) = CheckpointAnalysis.analyze(model, stats: stats)
                report.checkpoint = checkpoint
                report.findings += findings
            default:
                if wantScan {
                    let stats = TensorScan.scan(model.tensors, progress: progress)
                    let nan = zip(model.tensors, stats).filter { ($0.1?.nanCount ?? 0) > 0 }.map(\.0.name)
                    if !nan.isEmpty { report.findings.append(Finding("nan-values", .error, "\(nan.count) tensor(s) contain NaN", keys: nan)) }
                }
                if report.kind == .unknown {
                    report.findings.append(Finding("unknown-kind", .info, "neither a LoRA nor a Stable Diffusion checkpoint that this tool recognises"))
                }
            }
            if model.format.isPickle {
                report.findings.append(Finding("pickle-format", .info,
                        "pickle-based file: read safely here, but prefer .safetensors when sharing (torch.load can run code in such files)"))
            }
            let training = TrainingSummary(metadata: model.metadata, topTagCount: options.topTags)
            if !training.isEmpty { report.training = training }
            if let claimed = model.metadata[.sshsModelHash], let actual = report.hashes?.addnet, claimed != actual {
                report.findings.append(Finding("embedded-hash-mismatch", .warning,
                        "metadata sshs_model_hash (\(claimed.prefix(12))) differs from the actual data hash (\(actual.prefix(12))): AUTOMATIC1111 trusts "
                            + "the embedded value, so infotexts will name the wrong file"
                    ))
            }
        } catch {
            report.kind = .invalid
            report.failure = .init(kind: error.kind.rawValue, message: error.inFile(path).description)
            report.findings.append(Finding("invalid-network", .error, error.inFile(path).description))
        }
        report.findings.sort { $0.severity > $1.severity }
        return report
    }

    public static func kind(of model: ModelFile, network: NetworkFile) -> InspectionReport.Kind {
        let names = model.tensorNames
        let networkTensors = network.modules.reduce(0) { $0 + $1.parts.count }
        if !network.modules.isEmpty && networkTensors * 2 >= names.count { return .lora }
        if names.contains(where: { $0.hasPrefix("model.diffusion_model.") || $0.hasPrefix("cond_stage_model.") || $0.hasPrefix("conditioner.embedders.") }) {
            return .checkpoint
        }
        if !names.isEmpty && names.allSatisfy({ $0.hasPrefix("first_stage_model.") || $0.hasPrefix("encoder.") || $0.hasPrefix("decoder.")
            || $0.hasPrefix("quant_conv") || $0.hasPrefix("post_quant_conv") }) {
            return .vae
        }
        if names.contains(where: { $0 == "emb_params" || $0 == "clip_l" || $0 == "clip_g" || $0.hasPrefix("string_to_param") }) {
            return .embedding
        }
        if !network.modules.isEmpty || !network.incompleteModules.isEmpty { return .lora }
        return .unknown
    }
}
