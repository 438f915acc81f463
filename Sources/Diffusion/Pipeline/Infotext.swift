import Foundation
import LoRACore

/// A1111's infotext (the PNG `parameters` chunk), built as its
/// `create_infotext` builds it (1.9+ field order): the prompt, a
/// "Negative prompt:" line when there is one, then "Key: value" pairs joined
/// by ", ", with values that contain ',', ':' or a newline JSON-quoted.
/// Pasting it into A1111 (or PNG Info) restores these settings.
public struct Infotext: Sendable, Equatable {
    public var prompt: String
    public var negative: String
    var fields: [(String, String)]

    public static func == (a: Infotext, b: Infotext) -> Bool { a.text == b.text }

    public struct Model: Sendable {
        /// A1111's short checkpoint hash: the first 10 hex of the file's SHA-256.
        public var hash: String
        /// The checkpoint's file name without extension.
        public var name: String
        public init(hash: String, name: String) {
            self.hash = hash
            self.name = name
        }
    }

    public init(_ p: GenerationParameters, model: Model, vae: Model? = nil, loraHashes: [(name: String, hash: String)] = [], version: String? = nil,
                extra: [(String, String)] = []) {
        prompt = p.prompt
        negative = p.negativePrompt
        var f: [(String, String)] = [
            ("Steps", String(p.steps)),
            ("Sampler", p.sampler.sampler.rawValue),
            // DDIM and PLMS have no σ schedule; A1111 records its "Automatic" default.
            ("Schedule type", p.sampler.sampler.usesTimesteps ? ScheduleKind.automatic.rawValue : p.sampler.schedule.rawValue),
            ("CFG scale", Infotext.number(Double(p.cfgScale))),
            ("Seed", String(p.seed)),
            ("Size", "\(p.width)x\(p.height)"),
            ("Model hash", model.hash),
            ("Model", model.name),
        ]
        if let vae {
            f.append(("VAE hash", vae.hash))
            f.append(("VAE", vae.name))
        }
        if p.clipSkip > 1 { f.append(("Clip skip", String(p.clipSkip))) }
        // The engine draws noise like torch's CPU generator: A1111 needs "RNG: CPU" to reproduce it.
        f.append(("RNG", "CPU"))
        if p.emphasis != .original { f.append(("Emphasis", p.emphasis.rawValue)) }
        if !loraHashes.isEmpty {
            // As extra_networks_lora writes it: alias without ':' and ',', then the short hash.
            let list = loraHashes.map { "\($0.name.replacingOccurrences(of: ":", with: "").replacingOccurrences(of: ",", with: "")): \($0.hash)" }
            f.append(("Lora hashes", list.joined(separator: ", ")))
        }
        f += extra
        if let version { f.append(("Version", version)) }
        fields = f
    }

    public var text: String {
        let parameters = fields.map { key, value in key == value ? key : "\(key): \(Infotext.quote(value))" }.joined(separator: ", ")
        let negativeLine = negative.isEmpty ? "" : "\nNegative prompt: \(negative)"
        return "\(prompt)\(negativeLine)\n\(parameters)".trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// infotext_utils.quote: JSON-quote values containing ',', ':' or '\n'
    /// (json.dumps with ensure_ascii=False).
    public static func quote(_ text: String) -> String {
        guard text.contains(",") || text.contains(":") || text.contains("\n") else { return text }
        // json.dumps(ensure_ascii=False) escapes exactly what JSON requires, as LoRACore's writer does.
        var out = ""
        JSON.appendQuoted(text, to: &out)
        return out
    }

    /// Numbers as A1111 shows UI values: whole numbers without ".0", others
    /// in Python's shortest round-trip form (7 → "7", 7.5 → "7.5", 0.1 → "0.1").
    public static func number(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }
}
