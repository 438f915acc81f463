function __lora-inspect_should_offer_completions_for_flags_or_options -a expected_commands
    set -l non_repeating_flags_or_options $argv[2..]
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __lora-inspect_parse_tokens
    test "$commands" = "$expected_commands"; and return $non_repeating_flags_or_options_absent
end

function __lora-inspect_should_offer_completions_for_positional -a expected_commands positional_index_comparison expected_positional_index
    set -l non_repeating_flags_or_options
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __lora-inspect_parse_tokens
    test "$commands" = "$expected_commands" -a \( "$positional_index" "$positional_index_comparison" "$expected_positional_index" \)
end

function __lora-inspect_parse_tokens -S
    set -l unparsed_tokens (__lora-inspect_tokens -pc)
    switch $unparsed_tokens[1]
    case 'lora-inspect'
        __lora-inspect_parse_subcommand -r 1 'json' 'summary' 'hash' 'no-hash' 'scan' 'no-scan' 'svd' 'modules' 'metadata' 'fail-on=' 'tags=' 'q/quiet' 'v/verbose' 'version' 'h/help'
        switch $unparsed_tokens[1]
        case 'help'
            __lora-inspect_parse_subcommand -r 1 'version'
        end
    end
end

function __lora-inspect_tokens
    if test (string split -m 1 -f 1 -- . "$FISH_VERSION") -gt 3
        commandline --tokens-raw $argv
    else
        commandline -o $argv
    end
end

function __lora-inspect_parse_subcommand -S -a positional_count
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

function __lora-inspect_complete_directories
    set -l token (commandline -t)
    string match -- '*/' $token
    set -l subdirs $token*/
    printf %s\n $subdirs
end

function __lora-inspect_custom_completion
    set -x SAP_SHELL fish
    set -x SAP_SHELL_VERSION $FISH_VERSION
    set -l tokens (__lora-inspect_tokens -p)
    if test -z "$(__lora-inspect_tokens -t)"
        set -l index (count (__lora-inspect_tokens -pc))
        set tokens $tokens[..$index] \'\' $tokens[(math $index + 1)..]
    end
    command $tokens[1] $argv $tokens
end

complete -c 'lora-inspect' -f
complete -c 'lora-inspect' -n '__lora-inspect_should_offer_completions_for_positional "lora-inspect" -ge 1' -fa '(set -l exts \'safetensors\' \'ckpt\' \'pt\' \'pth\' \'bin\';for p in (string match -e -- \'*/\' (commandline -t);or printf \n)*.{$exts};printf %s\n $p;end;__fish_complete_directories (commandline -t) \'\')'
complete -c 'lora-inspect' -n '__lora-inspect_should_offer_completions_for_flags_or_options "lora-inspect" json' -l 'json' -d 'Print JSON for scripts: one object for one file, an array for several.'
complete -c 'lora-inspect' -n '__lora-inspect_should_offer_completions_for_flags_or_options "lora-inspect" summary' -l 'summary' -d 'One line per file: kind, family, type, rank/alpha, modules, size, hash, findings.'
complete -c 'lora-inspect' -n '__lora-inspect_should_offer_completions_for_flags_or_options "lora-inspect" hash' -l 'hash' -d 'Compute SHA-256, AutoV2 and AutoV3 (default: on for LoRAs and files under 64 MB).'
complete -c 'lora-inspect' -n '__lora-inspect_should_offer_completions_for_flags_or_options "lora-inspect" no-hash' -l 'no-hash' -d 'Compute SHA-256, AutoV2 and AutoV3 (default: on for LoRAs and files under 64 MB).'
complete -c 'lora-inspect' -n '__lora-inspect_should_offer_completions_for_flags_or_options "lora-inspect" scan' -l 'scan' -d 'Scan every value for NaN, Inf and all-zero tensors (default: on for LoRAs, off for checkpoints).'
complete -c 'lora-inspect' -n '__lora-inspect_should_offer_completions_for_flags_or_options "lora-inspect" no-scan' -l 'no-scan' -d 'Scan every value for NaN, Inf and all-zero tensors (default: on for LoRAs, off for checkpoints).'
complete -c 'lora-inspect' -n '__lora-inspect_should_offer_completions_for_flags_or_options "lora-inspect" svd' -l 'svd' -d 'Add the effective rank of each ΔW: the rank holding 90% and 99% of its energy.'
complete -c 'lora-inspect' -n '__lora-inspect_should_offer_completions_for_flags_or_options "lora-inspect" modules' -l 'modules' -d 'List every module (name, algorithm, rank, alpha, shape, ‖ΔW‖, block).'
complete -c 'lora-inspect' -n '__lora-inspect_should_offer_completions_for_flags_or_options "lora-inspect" metadata' -l 'metadata' -d 'Print all metadata keys and values.'
complete -c 'lora-inspect' -n '__lora-inspect_should_offer_completions_for_flags_or_options "lora-inspect" fail-on' -l 'fail-on' -d 'Exit with status 1 when a finding is at least this severe.' -rfka 'info warning error'
complete -c 'lora-inspect' -n '__lora-inspect_should_offer_completions_for_flags_or_options "lora-inspect" tags' -l 'tags' -d 'How many caption tags to show.' -rfka ''
complete -c 'lora-inspect' -n '__lora-inspect_should_offer_completions_for_flags_or_options "lora-inspect" q quiet' -l 'quiet' -s 'q' -d 'No progress bars.'
complete -c 'lora-inspect' -n '__lora-inspect_should_offer_completions_for_flags_or_options "lora-inspect" v verbose' -l 'verbose' -s 'v' -d 'Also print which CPU kernels are in use.'
complete -c 'lora-inspect' -n '__lora-inspect_should_offer_completions_for_flags_or_options "lora-inspect" version' -l 'version' -d 'Show the version.'
complete -c 'lora-inspect' -n '__lora-inspect_should_offer_completions_for_flags_or_options "lora-inspect" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'lora-inspect' -n '__lora-inspect_should_offer_completions_for_positional "lora-inspect" -eq 2' -fa 'help' -d 'Show subcommand help information.'
complete -c 'lora-inspect' -n '__lora-inspect_should_offer_completions_for_flags_or_options "lora-inspect help" version' -l 'version' -d 'Show the version.'
