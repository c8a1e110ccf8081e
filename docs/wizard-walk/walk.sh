#!/usr/bin/env bash
# The wizard from its first screen to a finished tiny run, in tmux at 80x24, driven by send-keys.
# Usage: walk.sh ADVISOR DATA.csv MODEL_DIR WORKDIR OUT_DIR (prepare.py makes DATA.csv and MODEL_DIR)
# Each screen is saved as text (tmux capture-pane -p) in OUT_DIR, numbered in the order it was seen.
set -euo pipefail
advisor=$1 data=$2 model=$3 work=$4 out=$5
session=wizard-walk
mkdir -p "$work" "$out"
tmux kill-session -t "$session" 2>/dev/null || true
tmux new-session -d -s "$session" -x 80 -y 24 "cd '$work' && HF_HUB_OFFLINE=1 '$advisor' wizard; sleep 3600"

shot() { tmux capture-pane -p -t "$session" > "$out/$1.txt"; }
keys() {  # one key at a time, as a person types them; -l TEXT types TEXT literally
  if [ "$1" = -l ]; then tmux send-keys -t "$session" -l "$2"; sleep 1; return; fi
  for key in "$@"; do tmux send-keys -t "$session" "$key"; sleep 0.5; done
  sleep 1
}
wait_for() {  # wait until the screen shows $1 (up to $2 seconds)
  for _ in $(seq "${2:-60}"); do
    tmux capture-pane -p -t "$session" | grep -qF -- "$1" && { sleep 2; return 0; }  # then let it settle
    sleep 1
  done
  echo "timed out waiting for: $1" >&2; shot "timeout"; return 1
}

wait_for "step 1 of 4"
shot 01-goal
keys Down Space                              # from Behaviour (the default) down to Both; space picks it
keys Tab Tab Tab Space                       # the third statement: it must keep its general ability
shot 02-goal-answered
keys C-n
wait_for "step 2 of 4"
shot 03-task-data
keys Tab Tab Tab                             # task -> examples -> quality -> data file
keys -l "${data%/*}/sm"                      # a path typed in part ...
keys Right                                   # ... and completed with the right arrow
keys Enter                                   # Enter reads the file and fills task, examples and quality
wait_for "filled in"
shot 04-data-read
keys Tab Tab                                 # language -> domain corpus: both left at their defaults
shot 05-language-corpus
keys C-n
wait_for "step 3 of 4"
keys Tab                                     # model list -> local folder
keys -l "${model%/*}/ti"
keys Right
keys Tab Enter                               # the accelerator list opens
keys Home Enter                              # its first entry: cpu
keys Tab Tab                                 # how many devices -> machines
shot 06-hardware
keys C-n
wait_for "step 4 of 4"
keys Enter                                   # Moderate latency (the default): Enter moves on
wait_for "x Execute"
sleep 2
shot 07-recommendation
keys x
wait_for "Execute the plan"
keys Enter
wait_for "validation loss" 600               # the first evaluation is on the loss chart
shot 08-running
wait_for "finished" 1500
shot 09-finished
tmux kill-session -t "$session"
