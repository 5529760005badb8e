"""Closed word lists that transcript normalisation reads (``models.normalize``, ``models.openings``).

Pure data, no dependencies: training and serving read exactly these lists.
"""

from __future__ import annotations

FILLERS = frozenset(
    [
        "um",
        "umm",
        "ummm",
        "uh",
        "uhh",
        "uhhh",
        "er",
        "erm",
        "err",
        "ah",
        "ahh",
        "eh",
        "hmm",
        "hmmm",
        "hm",
        "mm",
        "mmm",
        "mhm",
        "mmhmm",
        "uhm",
        "huh",
    ]
)
BACKCHANNELS = frozenset(
    [
        "okay",
        "ok",
        "k",
        "kay",
        "yeah",
        "yea",
        "yep",
        "yup",
        "right",
        "alright",
        "aha",
        "oh",
        "ah",
        "uh-huh",
        "mm-hmm",
    ]
)
GREETINGS = frozenset(
    ["hi", "hello", "hey", "hiya", "howdy", "greetings", "morning", "afternoon", "evening", "good", "there"]
)
# Words that on their own add nothing to a filler or digit turn ("and uh seven zero").
# "all" for "all right", the two-word "alright".
GLUE = frozenset(["and", "so", "the", "then", "also", "or", "um", "well", "like", "a", "an", "all"])
# Common English-language first names, for recognising a caller's self-introduction: a closed,
# hand-written list (lower case) of frequent given names in English-speaking countries. Names that are
# also everyday words ("bill", "will", "mark", "grace", "frank", "may", "hope", "jack") are left out on
# purpose: ``models.openings`` drops "this is <name>", "I'm <name>" and "it's <name>" only for a word
# that can be nothing but a name, so that "this is bill related" or "I'm frank with you" keep their
# words. "My name is <name>" needs no list: the phrase itself says a name follows.
FIRST_NAMES: frozenset[str] = frozenset(  # one word list reads better than 277 quoted lines
    """
    aaron abigail adam adrian aidan alan albert alex alexander alexandra alexis alice alicia alison
    allison amanda amelia amy andrea andrew angela anita ann anna anne annie anthony antonio ashley
    audrey austin barbara becky ben benjamin beth betty beverly brandon brenda brian brittany bruce
    bryan caleb cameron carl carla carlos carol caroline carolyn catherine charles charlie charlotte
    cheryl chloe chris christina christine christopher cindy claire colin connor craig cynthia
    dan daniel danielle david deborah debbie denise dennis derek diana diane donald donna doris dorothy
    douglas dylan edward eileen elaine eleanor elizabeth ella ellen emily emma eric erica erin ethan
    eugene evelyn gabriel gail gary george gerald gloria gordon greg gregory hannah harold harry helen
    henry howard ian isaac isabella jacob jacqueline james jamie jane janet janice jared jason jeff
    jeffrey jennifer jenny jeremy jerry jesse jessica jill joan joanne joe joel john johnny jon
    jonathan jordan jose joseph josh joshua joyce juan judith judy julia julie justin karen kate
    katherine kathleen kathryn kathy katie keith kelly kenneth kevin kim kimberly kyle larry laura
    lauren lawrence leah lee leslie linda lisa logan lori louis louise lucas lucy luis luke lynn
    madison marcus margaret maria marie marilyn mario martha martin mary matt matthew megan melissa
    michael michelle mike mildred monica nancy natalie nathan nicholas nicole noah norma olivia oscar
    pamela patricia patrick paul paula peter philip phillip rachel ralph randy raymond rebecca
    richard robert roberto robin rob roger ronald russell ruth ryan samantha samuel sandra sara sarah
    scott sean sharon shawn shirley sophia stephanie stephen steve steven sue susan tammy teresa
    terry theresa thomas tiffany timothy tom tony tracy tyler valerie vanessa victor victoria vincent
    virginia walter wayne william zachary
    """.split()  # noqa: SIM905
)
