import Foundation
import LoRACore

/// kohya's `--log_config` with a TensorBoard log: accelerate's `TensorBoardTracker.store_init_configuration`
/// hands the run's settings to torch's `SummaryWriter.add_hparams`, which writes a second event file in a
/// folder named by `time.time()` inside the run's log folder holding the hparams plugin's three summaries
/// (the experiment's parameter list, the session's values, its end), read by TensorBoard's HPARAMS tab; then
/// accelerate dumps the same values to `hparams.yml` in another such folder. torch's rules: a value of None
/// is left out; numbers *and booleans* (Python's bool is an int) are FLOAT64; strings are strings.
/// The event file's bytes equal a golden built with tensorboard's own protobuf classes
/// (Fixtures/golden/make_tensorboard_golden.py), map entries in key order (deterministic serialization).
extension TensorBoardLog {
    public enum HParam: Equatable, Sendable {
        case bool(Bool), int(Int), double(Double), string(String), none
    }

    /// Writes both files beside this log's event file; returns their paths.
    @discardableResult
    public func recordHParams(_ values: [(key: String, value: HParam)], now: Date = Date()) throws(ModelError) -> (events: String, yaml: String) {
        let folder = (path as NSString).deletingLastPathComponent
        let time = now.timeIntervalSince1970
        let eventsFolder = (folder as NSString).appendingPathComponent("\(time)")   // str(time.time())
        try AtomicOutput.createFolder(eventsFolder, what: "the TensorBoard hparams folder")
        let host = ProcessInfo.processInfo.hostName, pid = ProcessInfo.processInfo.processIdentifier
        let events = (eventsFolder as NSString).appendingPathComponent(String(format: "events.out.tfevents.%010d.%@.%d.0", Int(time), host, pid))
        let log = try TensorBoardLog(path: events, wallTime: time)
        for summary in Self.hparamSummaries(values) { log.record(summary: summary, wallTime: time) }
        // accelerate takes time.time() again for the YAML's folder.
        let yamlFolder = (folder as NSString).appendingPathComponent("\(time.nextUp)")
        try AtomicOutput.createFolder(yamlFolder, what: "the TensorBoard hparams folder")
        let yaml = (yamlFolder as NSString).appendingPathComponent("hparams.yml")
        try AtomicOutput.write(Array(Self.yaml(values).utf8), to: yaml)
        return (events, yaml)
    }

    /// torch's `hparams()`: the Summary protobufs of the experiment, the session start and its end, in that order.
    static func hparamSummaries(_ values: [(key: String, value: HParam)]) -> [ProtobufWriter] {
        var infos: [ProtobufWriter] = [], entries: [(String, ProtobufWriter)] = []
        for (key, value) in values {
            var protoValue = ProtobufWriter(), type: UInt64
            switch value {
            case .none: continue
            case let .bool(b): protoValue.double(2, b ? 1 : 0); type = 3      // number_value; DATA_TYPE_FLOAT64
            case let .int(i): protoValue.double(2, Double(i)); type = 3
            case let .double(d): protoValue.double(2, d); type = 3
            case let .string(s): protoValue.string(3, s); type = 1            // string_value; DATA_TYPE_STRING
            }
            var info = ProtobufWriter()
            info.string(1, key)   // HParamInfo.name
            info.varint(4, type)  // HParamInfo.type
            infos.append(info)
            entries.append((key, protoValue))
        }
        var experiment = ProtobufWriter()
        for info in infos { experiment.message(4, info) }   // Experiment.hparam_infos (no metrics)
        var start = ProtobufWriter()
        // SessionStartInfo.hparams, a map: entries (key 1, value 2) in key order, by the UTF-8 bytes.
        for (key, value) in entries.sorted(by: { Array($0.0.utf8).lexicographicallyPrecedes(Array($1.0.utf8)) }) {
            var entry = ProtobufWriter()
            entry.string(1, key)
            entry.message(2, value)
            start.message(1, entry)
        }
        var end = ProtobufWriter()
        end.varint(1, 1)   // SessionEndInfo.status = STATUS_SUCCESS
        // HParamsPluginData: version 0 (left out), experiment 2, session_start_info 3, session_end_info 4.
        return [("_hparams_/experiment", 2, experiment), ("_hparams_/session_start_info", 3, start), ("_hparams_/session_end_info", 4, end)]
            .map { tag, field, content in
                var data = ProtobufWriter()
                data.message(field, content)
                var plugin = ProtobufWriter()
                plugin.string(1, "hparams")
                plugin.message(2, data)
                var metadata = ProtobufWriter()
                metadata.message(1, plugin)
                var value = ProtobufWriter()
                value.string(1, tag)
                value.message(9, metadata)
                var summary = ProtobufWriter()
                summary.message(1, value)
                return summary
            }
    }

    /// `yaml.dump(values)` as PyYAML writes a flat dict of scalars: keys sorted, `true`/`false`, `null`, Python's
    /// float repr (with ".0" before an exponent that has no point), plain strings where YAML reads them back as
    /// the same string and quoted ones elsewhere.
    static func yaml(_ values: [(key: String, value: HParam)]) -> String {
        var lines: [String] = []
        for (key, value) in values.sorted(by: { $0.key < $1.key }) {
            let text: String
            switch value {
            case .none: text = "null"
            case let .bool(b): text = b ? "true" : "false"
            case let .int(i): text = String(i)
            case let .double(d):
                if d.isNaN { text = ".nan" } else if d.isInfinite { text = d > 0 ? ".inf" : "-.inf" } else {
                    let repr = pythonFloat(d).lowercased()
                    text = !repr.contains(".") && repr.contains("e") ? repr.replacingOccurrences(of: "e", with: ".0e") : repr
                }
            case let .string(s): text = yamlString(s)
            }
            lines.append("\(yamlString(key)): \(text)")
        }
        return lines.map { $0 + "\n" }.joined()
    }

    static func yamlString(_ s: String) -> String {
        let keywords: Set<String> = ["", "~", "null", "true", "false", "yes", "no", "on", "off", "y", "n"]
        let plain = s.wholeMatch(of: /[A-Za-z_\/][A-Za-z0-9_.\/-]*/) != nil && !keywords.contains(s.lowercased())
        if plain { return s }
        // PyYAML's printable set (its Reader refuses anything else, quoted or not).
        let printable = s.unicodeScalars.allSatisfy {
            (0x20...0x7E).contains($0.value) || $0.value == 0x85 || (0xA0...0xD7FF).contains($0.value) || (0xE000...0xFFFD).contains($0.value)
                || $0.value >= 0x10000
        }
        if printable { return "'" + s.replacingOccurrences(of: "'", with: "''") + "'" }
        // Control characters: a double-quoted scalar, whose escapes include JSON's (\uXXXX for everything outside
        // space…tilde, as PyYAML reads no raw DEL or C1 character even in quotes).
        var out = ""
        JSON.appendQuoted(s, to: &out, asciiOnly: true)
        return out
    }
}
