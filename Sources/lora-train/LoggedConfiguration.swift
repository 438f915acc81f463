import ArgumentParser
import Foundation
import Training

/// kohya's `--log_config` values (train_util.py `get_sanitized_config_or_none`): every option of the run
/// with its value, under sd-scripts' name where it has the option and ours otherwise; the paths that say
/// where a user's files live left out (kohya's list, and our --tokenizer), tokens too; lists as Python's
/// str() of a list, as kohya turns them into strings for accelerate. Read from the parsed command by
/// reflection, so a new option is logged without being listed here.
enum LoggedConfiguration {
    static let privateKeys: Set<String> = ["pretrained_model_name_or_path", "vae", "tokenizer_cache_dir", "train_data_dir", "conditioning_data_dir",
                                           "reg_data_dir", "output_dir", "logging_dir", "wandb_api_key", "huggingface_token", "tokenizer"]

    static func values(of command: Any, names: OptionNames) -> [(key: String, value: TensorBoardLog.HParam)] {
        var out: [(key: String, value: TensorBoardLog.HParam)] = [], seen = Set<String>()
        func walk(_ subject: Any) {
            for child in Mirror(reflecting: subject).children {
                guard let label = child.label, label.hasPrefix("_") else { continue }
                let wrapper = String(describing: type(of: child.value))
                guard let parsed = parsedValue(child.value) else { continue }
                if wrapper.hasPrefix("OptionGroup<") {
                    walk(parsed)
                    continue
                }
                guard wrapper.hasPrefix("Option<") || wrapper.hasPrefix("Flag<") else { continue }
                let property = String(label.dropFirst())
                // The property's name is its long option's (a test checks every key names an option), but for one spelling.
                let name = property == "use8bitAdam" ? "use-8bit-adam" : kebab(property)
                let key = names.configKey[ConfigFile.normalized(name)] ?? name.replacingOccurrences(of: "-", with: "_")
                guard !privateKeys.contains(key), !seen.contains(key) else { continue }
                seen.insert(key)
                out.append((key, hparam(parsed)))
            }
        }
        walk(command)
        return out
    }

    /// A property wrapper's parsed value (ArgumentParser keeps it as `.value(x)` in `_parsedValue`).
    static func parsedValue(_ wrapper: Any) -> Any? {
        guard let stored = Mirror(reflecting: wrapper).children.first(where: { $0.label == "_parsedValue" })?.value,
              let value = Mirror(reflecting: stored).children.first(where: { $0.label == "value" })?.value else { return nil }
        return value
    }

    static func hparam(_ value: Any) -> TensorBoardLog.HParam {
        let mirror = Mirror(reflecting: value)
        if mirror.displayStyle == .optional {
            guard let inner = mirror.children.first?.value else { return .none }
            return hparam(inner)
        }
        switch value {
        case let b as Bool: return .bool(b)
        case let i as Int: return .int(i)
        case let d as Double: return .double(d)
        case let f as Float: return .double(Double(f.description) ?? Double(f))   // 0.1, as the user wrote it, not 0.10000000149
        case let s as String: return .string(s)
        default:
            if mirror.displayStyle == .collection {
                // Python's str(list): strings in single quotes (repr), numbers as they print.
                let items = mirror.children.map { item -> String in
                    switch hparam(item.value) {
                    case let .string(s): "'" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
                    case let .double(d): pythonFloat(d)
                    case let .int(i): String(i)
                    case let .bool(b): b ? "True" : "False"
                    case .none: "None"
                    }
                }
                return .string("[" + items.joined(separator: ", ") + "]")
            }
            return .string(String(describing: value))
        }
    }

    /// ArgumentParser's long name for a property: `trainDataDir` → `train-data-dir`, `findLR` → `find-lr`.
    static func kebab(_ name: String) -> String {
        let characters = Array(name)
        var out = ""
        for (i, c) in characters.enumerated() {
            if c.isUppercase && i > 0 {
                let previous = characters[i - 1], next = i + 1 < characters.count ? characters[i + 1] : nil
                if previous.isLowercase || previous.isNumber || (previous.isUppercase && next?.isLowercase == true) { out += "-" }
            }
            out += c.lowercased()
        }
        return out
    }
}
