import Foundation
import LoRACore
#if canImport(Glibc)
import Glibc
#endif

/// Shell-style patterns for --loras (users quote them so the shell leaves
/// the `*` to us, as with `'out/mychar-*.safetensors'`).
public enum Globbing {
    public static func expand(_ patterns: [String]) throws(ModelError) -> [String] {
        var paths: [String] = []
        for pattern in patterns {
            guard pattern.contains(where: { "*?[".contains($0) }) else {
                guard FileManager.default.fileExists(atPath: pattern) else { throw ModelError(.io, "no such file", file: pattern) }
                paths.append(pattern)
                continue
            }
            var result = glob_t()
            defer { globfree(&result) }
            guard glob(pattern, 0, nil, &result) == 0, result.gl_pathc > 0 else {
                throw ModelError(.io, "no file matches '\(pattern)'")
            }
            for i in 0..<Int(result.gl_pathc) {
                if let p = result.gl_pathv[i] { paths.append(String(cString: p)) }
            }
        }
        var seen = Set<String>()
        return paths.filter { seen.insert($0).inserted }
    }
}
