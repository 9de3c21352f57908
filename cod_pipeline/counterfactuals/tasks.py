"""One registry entry per task: the LLM prompt material (instruction, few-shot pairs, completion
header) and the search's edit families. A task not listed here (topic, subjectivity, stance, …)
gets ``GENERIC``: a prompt driven by the class names, and negation and deletion edits only.

Adding a task is one ``Task(...)`` in ``TASKS``; ``dataset.task`` names it. The search looks the
task up by its exact name; prompts also accept the entry's ``aliases`` in any case (sst2, cola …).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from .edits import Edit, generic_edits, grammar_edits, sentiment_edits
from .tokens import Token, render, tokenize

SYSTEM = "You are a careful linguist who produces minimal counterfactual edits of sentences."

GENERIC_INSTRUCTION = (
    "Rewrite the text below so that its label changes from {source_label} to {target_label}. "
    "Make the minimal change: edit as few words as possible and keep everything else (wording, "
    "punctuation, casing) identical. Return ONLY the rewritten text, with no quotes, labels "
    "or explanation.\n\n{feedback}Text: \"{text}\""
)


@dataclass(frozen=True)
class Task:
    name: str
    edits: Callable[..., list[Edit]]  # (tokens, position, max_candidates, relaxed) -> single edits there
    negation_sites: bool = True  # explore negation sites beyond the top occlusion positions
    fallback: bool = False  # retry unflipped originals with relaxed edits (any word may be deleted)
    random_kinds: tuple[str, ...] = ("sub", "del", "ins")  # the random-edit control's edit kinds
    instruction: str = GENERIC_INSTRUCTION  # chat prompt (see llm.TaskPrompt)
    fewshot: tuple[tuple[str, str], ...] = ()  # completion mode: (original, flipped), in fewshot_labels' direction
    fewshot_labels: tuple[str, str] | None = None
    header: str = "Minimally edit each text so that its {task} label changes.\n\n"  # completion prompt's first line
    aliases: tuple[str, ...] = ()  # other names of the task in prompts
    fluent_cfes: bool = True  # a CFE reads about as well as its original (not where fluency is the label)


SENTIMENT = Task(
    "sentiment", sentiment_edits, fallback=True,
    instruction=(
        "Rewrite the sentence below so that its sentiment changes from {source_label} to {target_label}. "
        "Make the minimal change: edit as few words as possible and keep everything else (wording, "
        "punctuation, casing) identical. Return ONLY the rewritten sentence, with no quotes, labels "
        "or explanation.\n\n{feedback}Sentence: \"{text}\""),
    fewshot=(("a gorgeous, witty, seductive movie.", "a dull, witty, seductive movie."),
             ("the acting is superb and the story is moving.", "the acting is wooden and the story is moving."),
             ("i loved every minute of it.", "i hated every minute of it.")),
    fewshot_labels=("positive", "negative"),
    header="Minimally edit each sentence so that its sentiment flips.\n\n",
    aliases=("sst2", "sst-2", "imdb", "amazon", "yelp"),
)

ACCEPTABILITY = Task(
    "acceptability", grammar_edits, negation_sites=False, random_kinds=("sub", "del", "ins", "swap"),
    fluent_cfes=False,
    instruction=(
        "The sentence below is grammatically {source_label}. Rewrite it so that it becomes grammatically "
        "{target_label}, using the minimal grammar edit (e.g. change, add, delete or reorder one or two "
        "words; fix or break agreement, argument structure or word order). Keep everything else identical. "
        "Return ONLY the rewritten sentence, with no quotes, labels or explanation.\n\n"
        "{feedback}Sentence: \"{text}\""),
    fewshot=(("The dog chased the cat.", "The dog chased cat the."),
             ("She has written three books.", "She have written three books."),
             ("John seems to be happy.", "John seems be to happy.")),
    fewshot_labels=("acceptable", "unacceptable"),
    header="Minimally edit each sentence so that its grammatical acceptability flips.\n\n",
    aliases=("cola", "grammar"),
)

GENERIC = Task("generic", generic_edits)

TASKS: dict[str, Task] = {t.name: t for t in (SENTIMENT, ACCEPTABILITY)}


def get_task(name: str) -> Task:
    """The search's entry: by exact name, else ``GENERIC``."""
    return TASKS.get(name, GENERIC)


def prompt_task(name: str) -> Task:
    """The prompts' entry: by name or alias in any case, else ``GENERIC``."""
    key = name.lower()
    return next((t for t in TASKS.values() if key == t.name or key in t.aliases), GENERIC)


def candidate_edits(tokens: Sequence[Token], i: int, task: str = "sentiment", max_candidates: int = 4,
                    relaxed: bool = False) -> list[Edit]:
    """Single edits at word position ``i`` (at most ``max_candidates``), from the task's edit family."""
    return get_task(task).edits(tokens, i, max_candidates, relaxed)


def neighbours(text: str, task: str = "sentiment", max_candidates_per_position: int = 4) -> list[tuple[str, str]]:
    """All single-edit neighbours ``(edited_text, edit_label)`` of ``text`` (no teacher)."""
    toks = tokenize(text)
    out = []
    for i in range(len(toks)):
        for e in candidate_edits(toks, i, task, max_candidates_per_position):
            out.append((render(toks, dict(e.repl)), e.label))
    return out
