"""Hostile usernames every way of creating an account must refuse."""

# Names that read like another account's, or like markup, on a page that shows who drafted and who
# approved: each must be refused by every way in, before anything is stored.
HOSTILE_USERNAMES = [
    "off2 ",  # trailing space: reads "off2"
    " off2",
    "off 2",
    "off2\n",
    "off2\t",
    "\u0430dmin",  # Cyrillic a: reads "admin"
    "\uff41dmin",  # full-width a
    "adm\u200bin",  # zero-width space
    "admin\u202e",  # right-to-left override
    "x<script>",
    "o'neil",
    "a",  # too short
    "",
    "x" * 65,  # too long
    "BadName",  # upper case
    "-dash",
    ".dot",
]
