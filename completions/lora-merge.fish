function __lora-merge_should_offer_completions_for_flags_or_options -a expected_commands
    set -l non_repeating_flags_or_options $argv[2..]
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __lora-merge_parse_tokens
    test "$commands" = "$expected_commands"; and return $non_repeating_flags_or_options_absent
end

function __lora-merge_should_offer_completions_for_positional -a expected_commands positional_index_comparison expected_positional_index
    set -l non_repeating_flags_or_options
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __lora-merge_parse_tokens
    test "$commands" = "$expected_commands" -a \( "$positional_index" "$positional_index_comparison" "$expected_positional_index" \)
end

function __lora-merge_parse_tokens -S
    set -l unparsed_tokens (__lora-merge_tokens -pc)
    switch $unparsed_tokens[1]
    case 'lora-merge'
        __lora-merge_parse_subcommand 0 'version' 'h/help'
        switch $unparsed_tokens[1]
        case 'bake'
            __lora-merge_parse_subcommand 0 'm/model=' 'l/lora=+' 'precision=' 'allow-unmatched' 'o/output=' 'allow-nan' 'json' 'q/quiet' 'models=+' 'ratios=+' 'version' 'h/help'
        case 'loras'
            __lora-merge_parse_subcommand -r 1 'concat' 'rank=' 'conv-rank=' 'clamp-quantile=' 'precision=' 'modules' 'o/output=' 'allow-nan' 'json' 'q/quiet' 'models=+' 'ratios=+' 'version' 'h/help'
        case 'help'
            __lora-merge_parse_subcommand -r 1 'version'
        end
    end
end

function __lora-merge_tokens
    if test (string split -m 1 -f 1 -- . "$FISH_VERSION") -gt 3
        commandline --tokens-raw $argv
    else
        commandline -o $argv
    end
end

function __lora-merge_parse_subcommand -S -a positional_count
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

function __lora-merge_complete_directories
    set -l token (commandline -t)
    string match -- '*/' $token
    set -l subdirs $token*/
    printf %s\n $subdirs
end

function __lora-merge_custom_completion
    set -x SAP_SHELL fish
    set -x SAP_SHELL_VERSION $FISH_VERSION
    set -l tokens (__lora-merge_tokens -p)
    if test -z "$(__lora-merge_tokens -t)"
        set -l index (count (__lora-merge_tokens -pc))
        set tokens $tokens[..$index] \'\' $tokens[(math $index + 1)..]
    end
    command $tokens[1] $argv $tokens
end

complete -c 'lora-merge' -f
complete -c 'lora-merge' -n '__lora-merge_should_offer_completions_for_flags_or_options "lora-merge" version' -l 'version' -d 'Show the version.'
complete -c 'lora-merge' -n '__lora-merge_should_offer_completions_for_flags_or_options "lora-merge" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'lora-merge' -n '__lora-merge_should_offer_completions_for_positional "lora-merge" -eq 1' -fa 'bake' -d 'Bake LoRAs into a checkpoint: W\' = W + Σ ratio · block weight · (alpha/rank) · ΔW.'
complete -c 'lora-merge' -n '__lora-merge_should_offer_completions_for_positional "lora-merge" -eq 1' -fa 'loras' -d 'Combine LoRAs into one kohya-format LoRA, exactly (--concat) or by SVD to a rank (--rank).'
complete -c 'lora-merge' -n '__lora-merge_should_offer_completions_for_positional "lora-merge" -eq 1' -fa 'help' -d 'Show subcommand help information.'
complete -c 'lora-merge' -n '__lora-merge_should_offer_completions_for_flags_or_options "lora-merge bake" m model sd_model' -s 'm' -l 'model' -l 'sd_model' -d 'The checkpoint to merge into. kohya: --sd_model.' -rfa '(set -l exts \'safetensors\' \'ckpt\' \'pt\';for p in (string match -e -- \'*/\' (commandline -t);or printf \n)*.{$exts};printf %s\n $p;end;__fish_complete_directories (commandline -t) \'\')'
complete -c 'lora-merge' -n '__lora-merge_should_offer_completions_for_flags_or_options "lora-merge bake"' -l 'lora' -s 'l' -d 'A LoRA: path[:ratio][:unet ratio][:te=x][:unet=x][:lbw=weights]. Repeat for several.' -rfa '(set -l exts \'safetensors\' \'ckpt\' \'pt\';for p in (string match -e -- \'*/\' (commandline -t);or printf \n)*.{$exts};printf %s\n $p;end;__fish_complete_directories (commandline -t) \'\')'
complete -c 'lora-merge' -n '__lora-merge_should_offer_completions_for_flags_or_options "lora-merge bake" precision save_precision' -l 'precision' -l 'save_precision' -d 'Output precision of float tensors (default: each tensor\'s own). kohya: --save_precision (float = fp32).' -rfka 'fp16 bf16 fp32'
complete -c 'lora-merge' -n '__lora-merge_should_offer_completions_for_flags_or_options "lora-merge bake" allow-unmatched' -l 'allow-unmatched' -d 'Skip LoRA modules that match no weight of the checkpoint instead of failing (they are listed either way).'
complete -c 'lora-merge' -n '__lora-merge_should_offer_completions_for_flags_or_options "lora-merge bake" o output save_to' -s 'o' -l 'output' -l 'save_to' -d 'Output .safetensors file (written atomically; never an input). kohya: --save_to.' -rfa '(for p in (string match -e -- \'*/\' (commandline -t);or printf \n)*.\'safetensors\';printf %s\n $p;end;__fish_complete_directories (commandline -t) \'\')'
complete -c 'lora-merge' -n '__lora-merge_should_offer_completions_for_flags_or_options "lora-merge bake" allow-nan' -l 'allow-nan' -d 'Merge even if a LoRA contains NaN or Inf values.'
complete -c 'lora-merge' -n '__lora-merge_should_offer_completions_for_flags_or_options "lora-merge bake" json' -l 'json' -d 'Print the report as JSON.'
complete -c 'lora-merge' -n '__lora-merge_should_offer_completions_for_flags_or_options "lora-merge bake" q quiet' -l 'quiet' -s 'q' -d 'No progress bar.'
complete -c 'lora-merge' -n '__lora-merge_should_offer_completions_for_flags_or_options "lora-merge bake"' -l 'models' -d 'kohya\'s spelling: LoRA files, with --ratios.' -rfa '(set -l exts \'safetensors\' \'ckpt\' \'pt\';for p in (string match -e -- \'*/\' (commandline -t);or printf \n)*.{$exts};printf %s\n $p;end;__fish_complete_directories (commandline -t) \'\')'
complete -c 'lora-merge' -n '__lora-merge_should_offer_completions_for_flags_or_options "lora-merge bake"' -l 'ratios' -d 'kohya\'s --ratios: one per --models file (default 1).' -rfka ''
complete -c 'lora-merge' -n '__lora-merge_should_offer_completions_for_flags_or_options "lora-merge bake" version' -l 'version' -d 'Show the version.'
complete -c 'lora-merge' -n '__lora-merge_should_offer_completions_for_flags_or_options "lora-merge bake" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'lora-merge' -n '__lora-merge_should_offer_completions_for_positional "lora-merge loras" -ge 1' -fa '(set -l exts \'safetensors\' \'ckpt\' \'pt\';for p in (string match -e -- \'*/\' (commandline -t);or printf \n)*.{$exts};printf %s\n $p;end;__fish_complete_directories (commandline -t) \'\')'
complete -c 'lora-merge' -n '__lora-merge_should_offer_completions_for_flags_or_options "lora-merge loras" concat' -l 'concat' -d 'Exact combination: ranks add up (the default when no --rank is given).'
complete -c 'lora-merge' -n '__lora-merge_should_offer_completions_for_flags_or_options "lora-merge loras" new_rank rank' -l 'rank' -l 'new_rank' -d 'Target rank for SVD merging. kohya: --new_rank.' -rfka ''
complete -c 'lora-merge' -n '__lora-merge_should_offer_completions_for_flags_or_options "lora-merge loras" conv-rank new_conv_rank' -l 'conv-rank' -l 'new_conv_rank' -d 'Target rank of 3x3 conv modules (default: --rank). kohya: --new_conv_rank.' -rfka ''
complete -c 'lora-merge' -n '__lora-merge_should_offer_completions_for_flags_or_options "lora-merge loras" clamp-quantile clamp_quantile' -l 'clamp-quantile' -l 'clamp_quantile' -d 'Clamp factors at this quantile of their values, as kohya does.' -rfka ''
complete -c 'lora-merge' -n '__lora-merge_should_offer_completions_for_flags_or_options "lora-merge loras" precision save_precision' -l 'precision' -l 'save_precision' -d 'Output precision (default: the inputs\'). kohya: --save_precision.' -rfka 'fp16 bf16 fp32'
complete -c 'lora-merge' -n '__lora-merge_should_offer_completions_for_flags_or_options "lora-merge loras" modules' -l 'modules' -d 'List every module\'s rank and relative error.'
complete -c 'lora-merge' -n '__lora-merge_should_offer_completions_for_flags_or_options "lora-merge loras" o output save_to' -s 'o' -l 'output' -l 'save_to' -d 'Output .safetensors file (written atomically; never an input). kohya: --save_to.' -rfa '(for p in (string match -e -- \'*/\' (commandline -t);or printf \n)*.\'safetensors\';printf %s\n $p;end;__fish_complete_directories (commandline -t) \'\')'
complete -c 'lora-merge' -n '__lora-merge_should_offer_completions_for_flags_or_options "lora-merge loras" allow-nan' -l 'allow-nan' -d 'Merge even if a LoRA contains NaN or Inf values.'
complete -c 'lora-merge' -n '__lora-merge_should_offer_completions_for_flags_or_options "lora-merge loras" json' -l 'json' -d 'Print the report as JSON.'
complete -c 'lora-merge' -n '__lora-merge_should_offer_completions_for_flags_or_options "lora-merge loras" q quiet' -l 'quiet' -s 'q' -d 'No progress bar.'
complete -c 'lora-merge' -n '__lora-merge_should_offer_completions_for_flags_or_options "lora-merge loras"' -l 'models' -d 'kohya\'s spelling: LoRA files, with --ratios.' -rfa '(set -l exts \'safetensors\' \'ckpt\' \'pt\';for p in (string match -e -- \'*/\' (commandline -t);or printf \n)*.{$exts};printf %s\n $p;end;__fish_complete_directories (commandline -t) \'\')'
complete -c 'lora-merge' -n '__lora-merge_should_offer_completions_for_flags_or_options "lora-merge loras"' -l 'ratios' -d 'kohya\'s --ratios: one per --models file (default 1).' -rfka ''
complete -c 'lora-merge' -n '__lora-merge_should_offer_completions_for_flags_or_options "lora-merge loras" version' -l 'version' -d 'Show the version.'
complete -c 'lora-merge' -n '__lora-merge_should_offer_completions_for_flags_or_options "lora-merge loras" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'lora-merge' -n '__lora-merge_should_offer_completions_for_flags_or_options "lora-merge help" version' -l 'version' -d 'Show the version.'
