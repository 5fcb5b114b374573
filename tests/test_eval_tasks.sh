#!/usr/bin/env bash
# lightmamba eval on the tiny model and the hand-made task files of tests/data (README there: how
# each item's answer is known): the accuracies each file was built for, --limit, the output forms,
# and a one-line error naming the line for each kind of malformed task file.
. "$(dirname "$0")/cli_setup.sh"
DATA=$ROOT/tests/data

run() { "$BIN" eval --threads 2 --json -m "$MODEL" "$@" 2>"$tmp/err" || cat "$tmp/err"; }
# expect TASK [ARGS] -- KEY=VALUE ...: each JSON number equal to VALUE (to 6 decimals)
expect() {
    local task=$1; shift
    local args=()
    while [ "$1" != "--" ]; do args+=("$1"); shift; done; shift
    local out ok=1
    out=$(run --task "$task" -f "$DATA/$task.jsonl" "${args[@]}")
    for kv in "$@"; do
        local got; got=$(json_number "${kv%%=*}" "$out")
        awk -v g="$got" -v w="${kv#*=}" 'BEGIN { exit !(g != "" && (g - w < 5e-7 && w - g < 5e-7)) }' || ok=0
    done
    if [ $ok = 1 ]; then echo "ok: $task ${args[*]}: $out"; else echo "FAIL: $task ${args[*]}: want $*, got: $out"; fail=1; fi
}

expect lambada -- items=4 acc=0.5
expect hellaswag -- items=3 acc=0.333333 acc_norm=0.666667
expect hellaswag --limit 2 -- items=2 acc=0.5 acc_norm=1
expect piqa -- items=2 acc=1 acc_norm=1
expect arc -- items=2 acc=0.5 acc_norm=0.5
expect winogrande -- items=2 acc=0.5
out=$(run --task lambada -f "$DATA/lambada.jsonl")
awk -v p="$(json_number ppl "$out")" 'BEGIN { exit !(p > 1 && p < 1e6) }' || { echo "FAIL: lambada ppl: $out"; fail=1; }
grep -q '"acc_stderr": 0.28867513' <<<"$out" || { echo "FAIL: lambada acc_stderr (sqrt(0.25 / 3)): $out"; fail=1; }
out=$(run --task winogrande -f "$DATA/winogrande.jsonl")
grep -q acc_norm <<<"$out" && { echo "FAIL: winogrande reports acc_norm: $out"; fail=1; }
"$BIN" eval --task hellaswag -m "$MODEL" -f "$DATA/hellaswag.jsonl" --threads 2 >"$tmp/out" 2>&1
grep -q '^hellaswag: 3 items, acc 0.3333 +- 0.3333, acc_norm 0.6667 +- 0.3333 ([0-9.]* s)$' "$tmp/out" ||
    { echo "FAIL: text output:"; cat "$tmp/out"; fail=1; }

# --- malformed task files: one error line naming the file and line ---
bad() {  # name task pattern line...
    local name=$1 task=$2 want=$3; shift 3
    printf '%s\n' "$@" >"$tmp/$name.jsonl"
    expect_error_matching "$task: $name" "$want" eval --task "$task" -m "$MODEL" -f "$tmp/$name.jsonl"
}
good_lambada='{"text": "The history of the city of"}'
bad json lambada "json.jsonl:2: malformed JSON" "$good_lambada" '{"text": "a b",, }'
bad cut lambada "cut.jsonl:3: incomplete JSON" "$good_lambada" "$good_lambada" '{"text": "no closing brace"'
bad array lambada "array.jsonl:1: not a JSON object" '["text"]'
bad notext lambada 'notext.jsonl:1: field "text" missing or not a string' '{"txt": "a b"}'
bad textnum lambada 'textnum.jsonl:3: field "text" missing' "$good_lambada" "" '{"text": 5}'
bad oneword lambada "oneword.jsonl:1: .*context and a last word" '{"text": "word"}'
bad empty lambada "no lambada items" ""
bad label hellaswag 'label.jsonl:1: field "label" missing or not a choice number in \[0, 1\]' \
    '{"activity_label": "A", "ctx_a": "b", "ctx_b": "c", "endings": ["x", "y"], "label": 2}'
bad labelstr hellaswag 'labelstr.jsonl:1: field "label"' \
    '{"activity_label": "A", "ctx_a": "b", "ctx_b": "c", "endings": ["x", "y"], "label": "one"}'
bad endings hellaswag 'endings.jsonl:1: "endings" must hold 2 to 16' \
    '{"activity_label": "A", "ctx_a": "b", "ctx_b": "c", "endings": ["x"], "label": 0}'
bad endtype hellaswag 'endtype.jsonl:1: "endings" must be a string' \
    '{"activity_label": "A", "ctx_a": "b", "ctx_b": "c", "endings": ["x", 3], "label": 0}'
bad emptychoice hellaswag 'emptychoice.jsonl:1: a choice is empty' \
    '{"activity_label": "A", "ctx_a": "b", "ctx_b": "c", "endings": ["x", "[header]"], "label": 0}'
bad piqa piqa 'piqa.jsonl:1: field "sol2" missing' '{"goal": "g", "sol1": "a", "label": 0}'
bad key arc 'key.jsonl:1: "answerKey" is not one of' \
    '{"question": "q", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "C"}'
bad labels arc 'labels.jsonl:1: "choices" must hold 2 to 16 texts and as many labels' \
    '{"question": "q", "choices": {"text": ["a", "b"], "label": ["A"]}, "answerKey": "A"}'
bad choices arc 'choices.jsonl:1: field "choices" missing or not an object' '{"question": "q", "choices": [], "answerKey": "A"}'
bad blank winogrande 'blank.jsonl:1: "sentence" has no "_"' '{"sentence": "no blank", "option1": "a", "option2": "b", "answer": "1"}'
bad answer winogrande 'answer.jsonl:1: field "answer" missing or not a choice number in \[1, 2\]' \
    '{"sentence": "a _ b", "option1": "a", "option2": "b", "answer": "3"}'
expect_error_matching "unknown task" "unknown task 'mmlu'" eval --task mmlu -m "$MODEL" -f "$DATA/piqa.jsonl"
expect_error_matching "missing task file" "nope.jsonl" eval --task piqa -m "$MODEL" -f "$tmp/nope.jsonl"
expect_error "task file is a directory" eval --task piqa -m "$MODEL" -f "$tmp"
expect_error "no --task" eval -m "$MODEL" -f "$DATA/piqa.jsonl"
expect_error "--limit 0" eval --task piqa -m "$MODEL" -f "$DATA/piqa.jsonl" --limit 0
exit $fail
