function __lora-extract_should_offer_completions_for_flags_or_options -a expected_commands
    set -l non_repeating_flags_or_options $argv[2..]
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __lora-extract_parse_tokens
    test "$commands" = "$expected_commands"; and return $non_repeating_flags_or_options_absent
end

function __lora-extract_should_offer_completions_for_positional -a expected_commands positional_index_comparison expected_positional_index
    set -l non_repeating_flags_or_options
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __lora-extract_parse_tokens
    test "$commands" = "$expected_commands" -a \( "$positional_index" "$positional_index_comparison" "$expected_positional_index" \)
end

function __lora-extract_parse_tokens -S
    set -l unparsed_tokens (__lora-extract_tokens -pc)
    switch $unparsed_tokens[1]
    case 'lora-extract'
        __lora-extract_parse_subcommand 0 'version' 'h/help'
        switch $unparsed_tokens[1]
        case 'extract'
            __lora-extract_parse_subcommand 0 'base=' 'tuned=' 'rank=' 'conv-rank=' 'dynamic=' 'fro=' 'max-rank=' 'clamp-quantile=' 'min-diff=' 'alpha=' 'skip-unchanged' 'exact' 'o/output=' 'precision=' 'modules' 'json' 'q/quiet' 'version' 'h/help'
        case 'resize'
            __lora-extract_parse_subcommand 1 'rank=' 'conv-rank=' 'dynamic=' 'fro=' 'max-rank=' 'o/output=' 'precision=' 'modules' 'json' 'q/quiet' 'version' 'h/help'
        case 'help'
            __lora-extract_parse_subcommand -r 1 'version'
        end
    end
end

function __lora-extract_tokens
    if test (string split -m 1 -f 1 -- . "$FISH_VERSION") -gt 3
        commandline --tokens-raw $argv
    else
        commandline -o $argv
    end
end

function __lora-extract_parse_subcommand -S -a positional_count
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

function __lora-extract_complete_directories
    set -l token (commandline -t)
    string match -- '*/' $token
    set -l subdirs $token*/
    printf %s\n $subdirs
end

function __lora-extract_custom_completion
    set -x SAP_SHELL fish
    set -x SAP_SHELL_VERSION $FISH_VERSION
    set -l tokens (__lora-extract_tokens -p)
    if test -z "$(__lora-extract_tokens -t)"
        set -l index (count (__lora-extract_tokens -pc))
        set tokens $tokens[..$index] \'\' $tokens[(math $index + 1)..]
    end
    command $tokens[1] $argv $tokens
end

complete -c 'lora-extract' -f
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract" version' -l 'version' -d 'Show the version.'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_positional "lora-extract" -eq 1' -fa 'extract' -d 'Extract a LoRA: ΔW = tuned − base for every module kohya\'s LoRA targets, factored by SVD.'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_positional "lora-extract" -eq 1' -fa 'resize' -d 'Reduce a LoRA\'s rank (fixed or dynamic), keeping its effect\'s scale.'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_positional "lora-extract" -eq 1' -fa 'help' -d 'Show subcommand help information.'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract extract" base' -l 'base' -d 'The original model.' -rfa '(set -l exts \'safetensors\' \'ckpt\';for p in (string match -e -- \'*/\' (commandline -t);or printf \n)*.{$exts};printf %s\n $p;end;__fish_complete_directories (commandline -t) \'\')'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract extract" tuned' -l 'tuned' -d 'The fine-tuned model.' -rfa '(set -l exts \'safetensors\' \'ckpt\';for p in (string match -e -- \'*/\' (commandline -t);or printf \n)*.{$exts};printf %s\n $p;end;__fish_complete_directories (commandline -t) \'\')'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract extract" rank' -l 'rank' -d 'Rank of each module, or \'auto\' to choose it per module (with --fro or --dynamic); with a dynamic rule it is the cap (default: --max-rank when extracting, each module\'s own rank when resizing).' -rfka ''
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract extract" conv-rank' -l 'conv-rank' -d 'Rank of 3x3 conv modules (LoCon); also turns on the resnet and conv modules when extracting.' -rfka ''
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract extract" dynamic' -l 'dynamic' -d 'Choose ranks per module: sv_ratio=N, sv_fro=F or sv_cumulative=F; --rank then caps them.' -rfka ''
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract extract" fro' -l 'fro' -d 'Shorthand for --dynamic sv_fro=F.' -rfka ''
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract extract" max-rank' -l 'max-rank' -d 'Largest rank when --rank is \'auto\'.' -rfka ''
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract extract" clamp-quantile' -l 'clamp-quantile' -d 'Clamp factor values at this quantile (kohya\'s --clamp_quantile).' -rfka ''
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract extract" min-diff' -l 'min-diff' -d 'Leave the text encoder out unless some weight changed by more than this (kohya\'s --min_diff).' -rfka ''
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract extract" alpha' -l 'alpha' -d 'alpha of every module (default: the rank, i.e. scale 1).' -rfka ''
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract extract" skip-unchanged' -l 'skip-unchanged' -d 'Leave out U-Net modules that did not change at all (kohya writes them as zeros).'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract extract" exact' -l 'exact' -d 'Use LAPACK\'s exact SVD for every module.'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract extract" o output' -l 'output' -s 'o' -d 'Output .safetensors file (written atomically; never an input).' -rfka ''
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract extract" precision' -l 'precision' -d 'Output precision.' -rfka 'fp16 bf16 fp32'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract extract" modules' -l 'modules' -d 'List every module\'s rank, kept norm and error.'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract extract" json' -l 'json' -d 'Print the report as JSON.'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract extract" q quiet' -l 'quiet' -s 'q' -d 'No progress bar.'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract extract" version' -l 'version' -d 'Show the version.'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract extract" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_positional "lora-extract resize" -eq 1' -fa '(set -l exts \'safetensors\' \'ckpt\' \'pt\';for p in (string match -e -- \'*/\' (commandline -t);or printf \n)*.{$exts};printf %s\n $p;end;__fish_complete_directories (commandline -t) \'\')'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract resize" rank' -l 'rank' -d 'Rank of each module, or \'auto\' to choose it per module (with --fro or --dynamic); with a dynamic rule it is the cap (default: --max-rank when extracting, each module\'s own rank when resizing).' -rfka ''
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract resize" conv-rank' -l 'conv-rank' -d 'Rank of 3x3 conv modules (LoCon); also turns on the resnet and conv modules when extracting.' -rfka ''
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract resize" dynamic' -l 'dynamic' -d 'Choose ranks per module: sv_ratio=N, sv_fro=F or sv_cumulative=F; --rank then caps them.' -rfka ''
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract resize" fro' -l 'fro' -d 'Shorthand for --dynamic sv_fro=F.' -rfka ''
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract resize" max-rank' -l 'max-rank' -d 'Largest rank when --rank is \'auto\'.' -rfka ''
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract resize" o output' -l 'output' -s 'o' -d 'Output .safetensors file (written atomically; never an input).' -rfka ''
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract resize" precision' -l 'precision' -d 'Output precision.' -rfka 'fp16 bf16 fp32'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract resize" modules' -l 'modules' -d 'List every module\'s rank, kept norm and error.'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract resize" json' -l 'json' -d 'Print the report as JSON.'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract resize" q quiet' -l 'quiet' -s 'q' -d 'No progress bar.'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract resize" version' -l 'version' -d 'Show the version.'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract resize" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'lora-extract' -n '__lora-extract_should_offer_completions_for_flags_or_options "lora-extract help" version' -l 'version' -d 'Show the version.'
