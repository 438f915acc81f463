import Diffusion
import Foundation
import LoRACore
import XCTest
@testable import XYZPlot

final class PlanTests: XCTestCase {
    func entries(_ names: [String]) -> [LoRAEpochs.Entry] {
        LoRAEpochs.order(names, epochOf: { LoRAEpochs.nameEpoch(LoRAEpochs.stem($0)) })
    }

    func testEpochFilesSortByEpochAndAreLabelled() {
        let sorted = entries(["out/mychar-000010.safetensors", "out/mychar-000002.safetensors", "out/mychar-000004.safetensors"])
        XCTAssertEqual(sorted.map(\.label), ["e2", "e4", "e10"])
        // One file without an epoch: every label falls back to the name, epochs still first.
        let mixed = entries(["out/mychar.safetensors", "out/mychar-000004.safetensors"])
        XCTAssertEqual(mixed.map(\.label), ["mychar-000004", "mychar"])
        XCTAssertNil(LoRAEpochs.nameEpoch("v2"))
        XCTAssertEqual(LoRAEpochs.nameEpoch("style_e12"), 12)
        XCTAssertEqual(LoRAEpochs.nameEpoch("style_12"), 12)
    }

    func testValueListsAndRanges() throws {
        XCTAssertEqual(try ValueLists.numbers("0.4, 0.6,0.8,1.0", what: "w"), [0.4, 0.6, 0.8, 1])
        XCTAssertEqual(try ValueLists.numbers("0-1 (+0.25)", what: "w"), [0, 0.25, 0.5, 0.75, 1])
        XCTAssertEqual(try ValueLists.numbers("0-1 [3]", what: "w"), [0, 0.5, 1])
        XCTAssertEqual(try ValueLists.integers("1-4,10", what: "s"), [1, 2, 3, 4, 10])
        XCTAssertEqual(try ValueLists.numbers("-1--3", what: "x"), [-1, -2, -3])
        XCTAssertEqual(try ValueLists.numbers("0-1 (+0.1)", what: "w").count, 11)
        XCTAssertThrowsError(try ValueLists.numbers("abc", what: "w"))
        XCTAssertThrowsError(try ValueLists.numbers("0-1 (+-1)", what: "w"))
        XCTAssertThrowsError(try ValueLists.integers("1.5", what: "s"))
        XCTAssertEqual(ValueLists.strings("Euler a, \"DPM++ 2M, Karras\" ,DDIM"), ["Euler a", "DPM++ 2M, Karras", "DDIM"])
    }

    func request() -> PlanRequest {
        var r = PlanRequest()
        r.checkpoints = ["sd15.safetensors"]
        r.loras = entries(["a-000002.safetensors", "a-000004.safetensors"])
        r.weights = [0.5, 1]
        r.seeds = [1, 2]
        r.prompt = "mychar, smile, <lora>"
        return r
    }

    func testAxesFillXYZInOrderAndOverflowJoinsZ() throws {
        let plan = try request().plan()
        XCTAssertEqual(plan.x.kinds, [.lora])
        XCTAssertEqual(plan.y.kinds, [.weight])
        XCTAssertEqual(plan.z.kinds, [.seed])
        XCTAssertEqual(plan.cells.count, 8)
        XCTAssertEqual(plan.cells.map(\.index), Array(0..<8))
        let cell = plan.cells[5]  // z 1, y 0, x 1
        XCTAssertEqual([cell.x, cell.y, cell.z], [1, 0, 1])
        XCTAssertEqual(cell.settings.finalPrompt, "mychar, smile, <lora:a-000004:0.5>")
        XCTAssertEqual(cell.settings.seed, 2)

        var r = request()
        r.axes[2] = [.prompt]
        r.prompts = ["p1 <lora>", "p2"]
        let overflow = try r.plan()
        XCTAssertEqual(overflow.z.kinds, [.prompt, .seed], "seeds join the user's Z axis as a product")
        XCTAssertEqual(overflow.z.count, 4)
        XCTAssertEqual(overflow.z.label(1), "p1 <lora> | Seed: 2")
        XCTAssertEqual(overflow.cells.last?.settings.finalPrompt, "p2 <lora:a-000004:1>", "no placeholder: the tag is appended")

        r = request()
        r.axes = [[.seed], [], []]
        r.axes[1] = [.seed]
        XCTAssertThrowsError(try r.plan(), "a parameter on two axes")
    }

    /// A1111's Schedule type: its own option and axis, overriding the schedule
    /// a sampler's name implies whichever axis is applied first.
    func testScheduleTypeAxis() throws {
        var r = PlanRequest()
        r.checkpoints = ["m.safetensors"]
        r.samplers = [SamplerChoice(name: "Euler")!, SamplerChoice(name: "DPM++ 2M")!]
        r.schedules = [.karras, .uniform]
        for axes in [[[AxisKind.sampler], [.schedule], []], [[.schedule], [.sampler], []]] {
            r.axes = axes
            let plan = try r.plan()
            XCTAssertEqual(plan.cells.count, 4)
            let combos = Set(plan.cells.map { "\($0.settings.sampler.sampler.rawValue)/\($0.settings.sampler.schedule.rawValue)" })
            XCTAssertEqual(combos, ["Euler/Karras", "Euler/Uniform", "DPM++ 2M/Karras", "DPM++ 2M/Uniform"], "\(axes)")
        }
        XCTAssertEqual(AxisValue.schedule(.karras).label, "Schedule type: Karras")
        // One schedule applies to every sampler; without one the name decides (Automatic: Karras for DPM++ 2M).
        r.axes = [[], [], []]
        r.schedules = [.exponential]
        XCTAssertTrue(try r.plan().cells.allSatisfy { $0.settings.sampler.schedule == .exponential })
        r.schedules = []
        XCTAssertEqual(try r.plan().cells.map(\.settings.sampler.schedule), [.uniform, .karras])
    }

    func testPromptSearchReplaceAndShards() throws {
        var r = request()
        r.loras = Array(r.loras.prefix(1))
        r.weights = [1]
        r.seeds = [3]
        r.negative = "smile less"
        r.promptSR = ["smile", "frown", "cry"]
        let plan = try r.plan()
        XCTAssertEqual(plan.x.kinds, [.promptSR])
        XCTAssertEqual(plan.cells.map(\.settings.prompt), ["mychar, smile, <lora>", "mychar, frown, <lora>", "mychar, cry, <lora>"])
        XCTAssertEqual(plan.cells[2].settings.negative, "cry less")
        r.promptSR = ["laugh", "cry"]
        XCTAssertThrowsError(try r.plan())

        let big = try request().plan()
        let shards = (1...3).map { big.shard($0, of: 3).map(\.index) }
        XCTAssertEqual(shards.flatMap { $0 }.sorted(), Array(0..<8), "shards cover every cell exactly once")
        XCTAssertEqual(shards[0], [0, 3, 6])
        XCTAssertEqual(Shard("2/4"), Shard(part: 2, count: 4))
        XCTAssertNil(Shard("5/4"))
        XCTAssertNil(Shard("0/4"))
    }

    /// What the progress bar and the time estimate count per cell: A1111's DDIM and PLMS run one step fewer than
    /// their timesteps (range(0, 1000, 1000 // steps)), PLMS's first step evaluates twice, Heun's steps twice; DPM++ 2S
    /// (diffusers' single-step DPM-Solver) evaluates once per timestep asked.
    func testUNetEvaluationsPerCell() {
        var s = CellSettings(checkpoint: "a.safetensors", prompt: "x")
        for (sampler, steps, progress, evaluations) in [(SamplerKind.euler, 8, 8, 16), (.heun, 8, 8, 32), (.ddim, 8, 7, 14), (.plms, 8, 7, 16),
                                                        (.ddim, 30, 30, 60), (.plms, 30, 30, 62), (.plms, 1, 0, 0),
                                                        (.dpmpp2s, 8, 8, 16), (.dpmpp2s, 1, 1, 2)] {
            s.sampler = SamplerChoice(sampler)
            s.steps = steps
            XCTAssertEqual(CellRenderer.samplerSteps(s), progress, "\(sampler.rawValue), \(steps) steps")
            XCTAssertEqual(CellRenderer.unetEvaluations(s), evaluations, "\(sampler.rawValue), \(steps) steps, with CFG")
        }
    }

    func testCacheKeyFollowsContentNotPath() throws {
        var catalog = Catalog()
        catalog.checkpoints["a.safetensors"] = .init(path: "a.safetensors", family: "SD1.x", sha256: "aa", sizeMultiple: 64)
        catalog.checkpoints["copy.safetensors"] = .init(path: "copy.safetensors", family: "SD1.x", sha256: "aa", sizeMultiple: 64)
        catalog.loras["l.safetensors"] = .init(path: "l.safetensors", sha256: "11", a1111Hash: "1", family: nil, hasTextEncoder: true)
        var s = CellSettings(checkpoint: "a.safetensors", prompt: "x <lora>")
        s.lora = "l.safetensors"
        s.weight = 0.8
        let key = CellCache.key(s, catalog: catalog)
        var t = s
        t.checkpoint = "copy.safetensors"
        XCTAssertEqual(CellCache.key(t, catalog: catalog), key, "the same bytes under another path")
        // The noise kernel is torch's on this CPU unless chosen, and reaches the pipeline's parameters.
        XCTAssertEqual(s.noise, TorchGenerator.Variant.native)
        for variant in TorchGenerator.Variant.allCases {
            var v = s
            v.noise = variant
            XCTAssertEqual(v.generationParameters.noise, variant)
        }
        for change in [{ (c: inout CellSettings) in c.weight = 0.9 }, { $0.seed = 1 }, { $0.cfg = 6 }, { $0.steps = 21 },
                       { $0.sampler = SamplerChoice(.euler) }, { $0.negative = "n" }, { $0.blockWeights = "OUTD" }, { $0.width = 576 },
                       { $0.noise = $0.noise == .avx2 ? .libm : .avx2 }] {
            var u = s
            change(&u)
            XCTAssertNotEqual(CellCache.key(u, catalog: catalog), key)
        }
    }

    func testTypedTagsAreRefusedAndExtraLoRAsGetTags() throws {
        var r = request()
        r.prompt = "mychar, <lora:style:0.6>, <lora>"
        XCTAssertThrowsError(try r.plan()) { error in
            XCTAssertTrue("\(error)".contains("--with-lora"), "\(error)")
        }
        r = request()
        r.extraLoRAs = ["styles/ink.safetensors:0.6", "detail.safetensors:1:te=0.5:unet=0.8"]
        let plan = try r.plan()
        XCTAssertEqual(plan.cells[0].settings.finalPrompt,
                       "mychar, smile, <lora:a-000002:0.5> <lora:ink:0.6> <lora:detail:0.5:0.8>")
        r.extraLoRAs = ["x.safetensors:abc"]
        XCTAssertThrowsError(try r.plan())
    }

    func testExtraNetworkTagsAreStrippedLikeA1111() {
        XCTAssertEqual(ExtraNetworks.strip("a cat, <lora:mychar-000004:0.8>, smile"), "a cat, , smile")
        XCTAssertEqual(ExtraNetworks.parse("<lora:x:1:lbw=OUTD> b").tags, [.init(kind: "lora", arguments: ["x", "1", "lbw=OUTD"])])
        XCTAssertEqual(ExtraNetworks.strip("<not a tag> <:x> <lora:>"), "<not a tag> <:x> <lora:>")
    }
}
