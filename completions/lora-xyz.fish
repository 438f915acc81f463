function __lora-xyz_should_offer_completions_for_flags_or_options -a expected_commands
    set -l non_repeating_flags_or_options $argv[2..]
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __lora-xyz_parse_tokens
    test "$commands" = "$expected_commands"; and return $non_repeating_flags_or_options_absent
end

function __lora-xyz_should_offer_completions_for_positional -a expected_commands positional_index_comparison expected_positional_index
    set -l non_repeating_flags_or_options
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __lora-xyz_parse_tokens
    test "$commands" = "$expected_commands" -a \( "$positional_index" "$positional_index_comparison" "$expected_positional_index" \)
end

function __lora-xyz_parse_tokens -S
    set -l unparsed_tokens (__lora-xyz_tokens -pc)
    switch $unparsed_tokens[1]
    case 'lora-xyz'
        __lora-xyz_parse_subcommand 0 'version' 'h/help'
        switch $unparsed_tokens[1]
        case 'render'
            __lora-xyz_parse_subcommand 0 'm/model=+' 'vae=+' 'loras=+' 'with-lora=+' 'weights=' 'prompt=' 'prompts=' 'prompt-sr=' 'negative=' 'seeds=' 'sampler=' 'schedule=' 'steps=' 'cfg=' 'clip-skip=' 'lbw=+' 'width=' 'height=' 'rng-variant=' 'precision=' 'x=' 'y=' 'z=' 'o/output=' 'cells=' 'combined' 'cell-size=' 'manifest=' 'font=' 'json' 'q/quiet' 'cache=' 'tokenizer=' 'shard=' 'dry-run' 'version' 'h/help'
        case 'assemble'
            __lora-xyz_parse_subcommand 0 'cache=+' 'allow-missing' 'plan=' 'o/output=' 'cells=' 'combined' 'cell-size=' 'manifest=' 'font=' 'json' 'q/quiet' 'version' 'h/help'
        case 'help'
            __lora-xyz_parse_subcommand -r 1 'version'
        end
    end
end

function __lora-xyz_tokens
    if test (string split -m 1 -f 1 -- . "$FISH_VERSION") -gt 3
        commandline --tokens-raw $argv
    else
        commandline -o $argv
    end
end

function __lora-xyz_parse_subcommand -S -a positional_count
    argparse -s r -- $argv
    set -l option_specs $argv[2..]
    set -l is_repeating_positional $_flag_r
    set -el _flag_r
    set -a commands $unparsed_tokens[1]
    set positional_index 0
    while true
        set -e unparsed_tokens[1]
        argparse -sn "$commands" $option_specs -- $unparsed_tokens 2> /dev/null
        set unparsed_tokens $argv
        set positional_index (math $positional_index + 1)
        for non_repeating_flag_or_option in $non_repeating_flags_or_options
            if set -ql "_flag_$(string replace -a - _ -- $non_repeating_flag_or_option)"
                set non_repeating_flags_or_options_absent 1
                break
            end
        end
        test (count $unparsed_tokens) -eq 0 -o \( -z "$is_repeating_positional" -a "$positional_index" -gt "$positional_count" \) && break
    end
end

function __lora-xyz_complete_directories
    set -l token (commandline -t)
    string match -- '*/' $token
    set -l subdirs $token*/
    printf %s\n $subdirs
end

function __lora-xyz_custom_completion
    set -x SAP_SHELL fish
    set -x SAP_SHELL_VERSION $FISH_VERSION
    set -l tokens (__lora-xyz_tokens -p)
    if test -z "$(__lora-xyz_tokens -t)"
        set -l index (count (__lora-xyz_tokens -pc))
        set tokens $tokens[..$index] \'\' $tokens[(math $index + 1)..]
    end
    command $tokens[1] $argv $tokens
end

complete -c 'lora-xyz' -f
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz" version' -l 'version' -d 'Show the version.'
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_positional "lora-xyz" -eq 1' -fa 'render' -d 'Plan, render (what is not cached) and draw a comparison sheet (the default command).'
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_positional "lora-xyz" -eq 1' -fa 'assemble' -d 'Draw the sheet from cached cells (e.g. the caches of --shard runs), without rendering.'
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_positional "lora-xyz" -eq 1' -fa 'help' -d 'Show subcommand help information.'
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz render"' -l 'model' -s 'm' -d 'Checkpoint (SD1.x, SD2.x, SDXL; .safetensors or .ckpt). Repeat for a checkpoint axis.' -rfa '(set -l exts \'safetensors\' \'ckpt\';for p in (string match -e -- \'*/\' (commandline -t);or printf \n)*.{$exts};printf %s\n $p;end;__fish_complete_directories (commandline -t) \'\')'
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz render"' -l 'vae' -d 'A separate VAE (A1111\'s SD VAE), e.g. vae-ft-mse-840000-ema-pruned.safetensors. Repeat for a VAE axis.' -rfa '(set -l exts \'safetensors\' \'ckpt\' \'pt\';for p in (string match -e -- \'*/\' (commandline -t);or printf \n)*.{$exts};printf %s\n $p;end;__fish_complete_directories (commandline -t) \'\')'
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz render"' -l 'loras' -d 'LoRA files or glob patterns (quoted), e.g. \'out/mychar-*.safetensors\'.' -rfa '(set -l exts \'safetensors\' \'ckpt\' \'pt\';for p in (string match -e -- \'*/\' (commandline -t);or printf \n)*.{$exts};printf %s\n $p;end;__fish_complete_directories (commandline -t) \'\')'
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz render"' -l 'with-lora' -d 'A LoRA on every cell besides the axis LoRA: path[:weight][:te=x][:unet=x][:lbw=...]. Repeatable.' -rfa '(set -l exts \'safetensors\' \'ckpt\' \'pt\';for p in (string match -e -- \'*/\' (commandline -t);or printf \n)*.{$exts};printf %s\n $p;end;__fish_complete_directories (commandline -t) \'\')'
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz render" weights' -l 'weights' -d 'LoRA weights: 0.4,0.6,0.8,1 or ranges 0-1 (+0.25), 0-1 [5]; negative weights are allowed.' -rfka ''
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz render" prompt' -l 'prompt' -d 'The prompt; <lora> marks where the LoRA tag goes (else it is appended).' -rfka ''
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz render" prompts' -l 'prompts' -d 'A text file of prompts, one per line: a prompt axis.' -rF
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz render" prompt-sr' -l 'prompt-sr' -d 'Prompt S/R: comma-separated; the first is searched for and replaced by each.' -rfka ''
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz render" negative' -l 'negative' -d 'Negative prompt.' -rfka ''
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz render" seeds' -l 'seeds' -d 'Seeds: 1234,5678 or a range 1-4. -1 picks a random seed (a new one each run, so the cells are not reused).' -rfka ''
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz render" sampler' -l 'sampler' -d 'Samplers, comma-separated: Euler, Euler a, DPM++ 2M, DPM++ 2M Karras, DPM++ SDE, DPM++ SDE Karras, DDIM, PLMS, LMS, Heun, DPM2, DPM2 a, DPM++ 2S (or euler_a, dpmpp_2m_karras, …). A name without a schedule uses A1111\'s Automatic one (1.9+): Karras for DPM++ 2M and DPM++ SDE, Uniform for Euler, Euler a, DDIM.' -rfka 'euler euler_a dpmpp_2m dpmpp_2m_karras dpmpp_sde dpmpp_sde_karras ddim plms lms heun dpm2 dpm2_a dpmpp_2s'
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz render" schedule' -l 'schedule' -d 'A1111\'s Schedule type, comma-separated (an axis when several): Automatic, Uniform, Karras, Exponential; overrides the schedule a sampler\'s name implies.' -rfka 'Automatic Uniform Karras Exponential'
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz render" steps' -l 'steps' -d 'Sampling steps (list allowed).' -rfka ''
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz render" cfg' -l 'cfg' -d 'CFG scale (list allowed).' -rfka ''
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz render" clip-skip' -l 'clip-skip' -d 'A1111\'s clip skip, SD1 only (list allowed).' -rfka ''
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz render"' -l 'lbw' -d 'LoRA Block Weight preset (ALL, INS, OUTD, …) or list. Repeat for a block-weight axis.' -rfka 'NONE ALL INS IND INALL MIDD OUTD OUTS OUTALL ALL0.5'
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz render" width' -l 'width' -d 'Image width.' -rfka ''
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz render" height' -l 'height' -d 'Image height.' -rfka ''
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz render" rng-variant' -l 'rng-variant' -d 'torch\'s CPU noise kernel to reproduce (A1111\'s RNG source: CPU): avx2 (torch on any x86-64 CPU with AVX2, AVX-512 ones included), libm (torch on ARM or older x86), auto (torch\'s choice on this CPU).' -rfka 'auto avx2 libm'
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz render" precision' -l 'precision' -d 'Arithmetic of the engine\'s matrix products: fp32 (exact and reproducible), or bf16 (operands rounded to bfloat16, fp32 accumulation, as torch\'s CPU autocast; on AMX units, several times faster there; images close to fp32\'s, not equal). On a CPU without AMX (no bf16 units, or AVX512-BF16 alone, slower than fp32) bf16 computes in fp32 and says so.' -rfka 'fp32 bf16'
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz render" x' -l 'x' -d 'Parameters on X (comma-separated when several): lora, weight, seed, prompt, prompt-sr, sampler, schedule, cfg, steps, lbw, checkpoint, vae, clip-skip.' -rfka 'lora weight seed prompt prompt-sr sampler schedule cfg steps lbw checkpoint vae clip-skip'
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz render" y' -l 'y' -d 'Parameters on Y.' -rfka 'lora weight seed prompt prompt-sr sampler schedule cfg steps lbw checkpoint vae clip-skip'
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz render" z' -l 'z' -d 'Parameters on Z: one grid per value.' -rfka 'lora weight seed prompt prompt-sr sampler schedule cfg steps lbw checkpoint vae clip-skip'
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz render" o output' -l 'output' -s 'o' -d 'The sheet (.png, or .jpg); with several Z values, one grid per value: NAME-z1.png, …' -rfka ''
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz render" cells' -l 'cells' -d 'Also save every cell as a PNG with its infotext in this folder.' -rfka ''
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz render" combined' -l 'combined' -d 'With several Z values, also write all grids on one sheet (the -o path).'
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz render" cell-size' -l 'cell-size' -d 'Longest side of a cell on the sheet (default: full size, shrunk to keep grids under 16384 px).' -rfka ''
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz render" manifest' -l 'manifest' -d 'Manifest JSON (default: NAME.json next to the sheet).' -rfka ''
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz render" font' -l 'font' -d 'Label font (default: DejaVu Sans; or $LORA_TOOLS_FONT).' -rfa '(set -l exts \'ttf\' \'otf\';for p in (string match -e -- \'*/\' (commandline -t);or printf \n)*.{$exts};printf %s\n $p;end;__fish_complete_directories (commandline -t) \'\')'
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz render" json' -l 'json' -d 'Print the result as JSON.'
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz render" q quiet' -l 'quiet' -s 'q' -d 'No progress bar or messages.'
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz render" cache' -l 'cache' -d 'Cell cache folder (default: next to the output, NAME.cache).' -rfa '(__lora-xyz_complete_directories)'
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz render" tokenizer' -l 'tokenizer' -d 'CLIP tokenizer: a folder with vocab.json and merges.txt, or bpe_simple_vocab_16e6.txt.gz.' -rF
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz render" shard' -l 'shard' -d 'Render only shard i of n (1-based): every n-th cell.' -rfka ''
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz render" dry-run' -l 'dry-run' -d 'Print the plan (axes, cells, cached, estimated time) and stop.'
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz render" version' -l 'version' -d 'Show the version.'
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz render" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz assemble"' -l 'cache' -d 'A cache folder; repeat to merge the caches of several machines.' -rfa '(__lora-xyz_complete_directories)'
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz assemble" allow-missing' -l 'allow-missing' -d 'Draw cells no cache has as gray boxes instead of failing.'
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz assemble" plan' -l 'plan' -d 'The plan to draw when the cache holds several (runs with different settings): its id (or the start of it), as the error lists them, or a plan file.' -rfka ''
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz assemble" o output' -l 'output' -s 'o' -d 'The sheet (.png, or .jpg); with several Z values, one grid per value: NAME-z1.png, …' -rfka ''
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz assemble" cells' -l 'cells' -d 'Also save every cell as a PNG with its infotext in this folder.' -rfka ''
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz assemble" combined' -l 'combined' -d 'With several Z values, also write all grids on one sheet (the -o path).'
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz assemble" cell-size' -l 'cell-size' -d 'Longest side of a cell on the sheet (default: full size, shrunk to keep grids under 16384 px).' -rfka ''
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz assemble" manifest' -l 'manifest' -d 'Manifest JSON (default: NAME.json next to the sheet).' -rfka ''
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz assemble" font' -l 'font' -d 'Label font (default: DejaVu Sans; or $LORA_TOOLS_FONT).' -rfa '(set -l exts \'ttf\' \'otf\';for p in (string match -e -- \'*/\' (commandline -t);or printf \n)*.{$exts};printf %s\n $p;end;__fish_complete_directories (commandline -t) \'\')'
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz assemble" json' -l 'json' -d 'Print the result as JSON.'
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz assemble" q quiet' -l 'quiet' -s 'q' -d 'No progress bar or messages.'
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz assemble" version' -l 'version' -d 'Show the version.'
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz assemble" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'lora-xyz' -n '__lora-xyz_should_offer_completions_for_flags_or_options "lora-xyz help" version' -l 'version' -d 'Show the version.'
