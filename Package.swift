// swift-tools-version:6.0
// LoRA Tools: native tools for Stable Diffusion LoRAs. See README.md.
import PackageDescription

let package = Package(
    name: "LoRATools",
    products: [
        .executable(name: "lora-inspect", targets: ["lora-inspect"]),
        .executable(name: "lora-merge", targets: ["lora-merge"]),
        .executable(name: "lora-extract", targets: ["lora-extract"]),
        .executable(name: "lora-xyz", targets: ["lora-xyz"]),
        .executable(name: "lora-train", targets: ["lora-train"]),
        .library(name: "LoRACore", targets: ["LoRACore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // System libraries: module maps only.
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS"),
        .systemLibrary(name: "CLAPACKE", path: "Sources/CLAPACKE"),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG", pkgConfig: "libpng"),
        .systemLibrary(name: "CJPEG", path: "Sources/CJPEG"),
        .systemLibrary(name: "CWebP", path: "Sources/CWebP", pkgConfig: "libwebp"),
        .systemLibrary(name: "CFreeType", path: "Sources/CFreeType", pkgConfig: "freetype2"),

        // Format kernels (dtype conversion, SHA-256, value scans, file copies,
        // interrupt clean-up) and the CPU detection every kernel dispatches on.
        .target(name: "CKernels", path: "Sources/CKernels"),

        // The engine's kernels (activations, softmax, Winograd, fused attention,
        // torch noise, allocator). -O2 even in debug builds: the test suite runs
        // the engine, and at -O0 these loops are several times slower. Only the
        // engine depends on this target, so the LoRACore library product carries
        // no unsafe flags and other packages can depend on it by version.
        .target(name: "CEngineKernels", dependencies: ["CKernels"], path: "Sources/CEngineKernels",
                cSettings: [.unsafeFlags(["-O2"])]),

        // oneDNN's GEMM and matmul primitives behind a BLAS-like call (Debian's
        // libdnnl: torch's CPU kernels; AVX2, AVX-512 and AMX chosen at run time).
        .target(name: "COneDNN", dependencies: ["CKernels"], path: "Sources/COneDNN", linkerSettings: [.linkedLibrary("dnnl"), .linkedLibrary("gomp")]),

        // The one GEMM (OpenBLAS or oneDNN, fp32 or bf16), BLAS/LAPACK wrappers, QR and SVD.
        .target(name: "LinearAlgebra", dependencies: ["CBLAS", "CLAPACKE", "COneDNN"]),

        // File formats, tensors, key maps, LoRA math, audits. No CLI knowledge.
        .target(name: "LoRACore", dependencies: ["CKernels", "CZlib", "LinearAlgebra"]),

        // The diffusion engine: tokenizer, CLIP, U-Net, VAE, samplers, noise.
        .target(name: "Diffusion", dependencies: ["LoRACore", "LinearAlgebra", "CKernels", "CEngineKernels", "CZlib"]),

        // JPEG decoding behind setjmp: libjpeg's error exits cannot unwind through Swift.
        .target(name: "CImaging", dependencies: ["CJPEG"], path: "Sources/CImaging", linkerSettings: [.linkedLibrary("jpeg")]),

        // Bitmaps, PNG/JPEG files, text drawn with FreeType, grid sheets.
        .target(name: "Imaging", dependencies: ["CPNG", "CJPEG", "CWebP", "CImaging", "CFreeType", "CZlib"]),

        // Training: kohya's dataset, network, objective, optimizers and loop (the
        // layers' backward passes live beside their forwards in Diffusion).
        .target(name: "Training", dependencies: ["Diffusion", "Imaging", "LoRACore", "LinearAlgebra"]),

        // lora-xyz's plan, cache, renderer and sheets, over the engine.
        .target(name: "XYZPlot", dependencies: ["Diffusion", "Imaging", "LoRACore"]),

        // What every executable shares: progress, JSON, exit codes, BLAS set-up, man pages.
        .target(name: "ToolSupport", dependencies: [
            "LoRACore", "CBLAS",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .executableTarget(name: "lora-inspect", dependencies: [
            "LoRACore", "ToolSupport",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .executableTarget(name: "lora-merge", dependencies: [
            "LoRACore", "ToolSupport",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .executableTarget(name: "lora-extract", dependencies: [
            "LoRACore", "ToolSupport",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .executableTarget(name: "lora-xyz", dependencies: [
            "XYZPlot", "Diffusion", "Imaging", "LoRACore", "ToolSupport",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .executableTarget(name: "lora-train", dependencies: [
            "Training", "Diffusion", "Imaging", "LoRACore", "ToolSupport",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // Deterministic generator of tiny SD-shaped models and LoRAs (tests, benchmarks).
        .target(name: "FixtureKit", dependencies: ["LoRACore"], path: "Fixtures/Generator"),

        .executableTarget(name: "lora-bench", dependencies: [
            "LoRACore", "LinearAlgebra", "ToolSupport", "FixtureKit", "Diffusion", "Training", "Imaging",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], path: "Benchmarks/lora-bench"),

        .testTarget(name: "LoRACoreTests", dependencies: ["LoRACore", "CKernels", "FixtureKit"]),
        .testTarget(name: "LinearAlgebraTests", dependencies: ["LinearAlgebra", "COneDNN"]),
        .testTarget(name: "DiffusionTests", dependencies: ["Diffusion", "LoRACore", "LinearAlgebra", "FixtureKit"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Diffusion", "Imaging", "LoRACore", "LinearAlgebra", "FixtureKit"]),
        .testTarget(name: "ToolTests", dependencies: ["CWebP", "LoRACore", "LinearAlgebra", "ToolSupport", "FixtureKit", "Imaging", "Training"]),
        .testTarget(name: "XYZPlotTests", dependencies: ["XYZPlot", "Imaging", "CWebP", "Diffusion", "LoRACore", "FixtureKit"]),
    ]
)
