"""The planner's vocabulary: which words and phrases point at which agent group.

Plain data for agents/planner.py, which holds the rules that use it. Words are written in
their base form (the planner stems both them and the instruction), patterns are matched on
lower-cased clauses in which quoted text reads "qqq" and URLs read "urlx".
"""

from __future__ import annotations

# Words that name a group wherever they appear, by (group, strength); weak ones only
# lower the planner's confidence.
CUES: dict[tuple[str, str], str] = {
    ("layout", "strong"): "column grid masonry layout stack split merge combine",
    ("layout", "weak"): "carousel slider row vertically horizontally",
    ("components", "strong"): "rename translate translation reword rewrite retitle proofread "
    "typo spelling wording lorem ipsum placeholder copyright",
    ("events", "strong"): "click tap press submit submission validate validation required toggle "
    "swipe drag fetch api endpoint webhook cms crm database analytics track conversion cart "
    "checkout dismiss dismissable expand expandable collapse collapsible filter sort paginate "
    "pagination navigate redirect remember persist localstorage autocomplete upload send prefill "
    "pre-fill autofill populate feed rss sync integrate keyboard shortcut hotkey logged-in "
    "signed-in personalise personalize connect wire hook payment pay purchase notify trigger "
    "handler listener reload geolocation detect debounce book booking reserve reservation rsvp "
    "waitlist appointment",
    ("events", "weak"): "load url urlx play pause share download save",
    ("styles", "strong"): "colour color font typeface typography serif sans-serif bold bolder "
    "italic underline uppercase lowercase spacing padding margin gap whitespace border outline "
    "rounded corner radius shadow opacity transparent translucent blur gradient theme palette "
    "css style styling look appearance shape pill contrast dark darker light lighter bright "
    "brighter pastel soft softer vibrant big bigger large larger small smaller tiny huge size "
    "thicker thinner align alignment center centre centered sticky stick responsive brand red "
    "orange yellow green blue purple violet pink teal cyan navy gray grey black white brown "
    "beige gold silver indigo magenta turquoise coral mint lavender highlight emphasis shade tint "
    "hue monochrome readable legible line-height kerning justify indent overlay frosted glass "
    "neon square circular rounder sharper dim dimmer caps all-caps capitalise capitalize "
    "monospace arial helvetica georgia roboto lato montserrat poppins playfair merriweather "
    "garamond futura inter raleway nunito",
    ("styles", "weak"): "modern minimal sleek elegant clean nice nicer pretty prettier beautiful "
    "ugly visual visually cramped crowded airy roomy breathing tight tighten loosen dense compact "
    "premium luxury playful retro vintage minimalist corporate",
    ("animation", "strong"): "animate animated animation motion transition fade slide zoom "
    "bounce spin rotate flip pulse shake wiggle wobble jiggle blink parallax hover entrance "
    "stagger marquee typewriter glide keyframes lift tilt sway swing shimmer sparkle confetti "
    "ripple morph tween jitter lottie ticker",
    ("animation", "weak"): "smooth smoothly reveal",
}

# What an edit acts on, by kind; "named" are the usual sections by name ("the pricing").
NOUNS = {
    "section": "section sidebar hero header footer navbar banner strip band block area region "
    "panel container carousel slider grid column row layout masonry",
    "named": "pricing testimonial feature about faq team contact gallery stats newsletter blog "
    "portfolio services partners clients",
    "component": "button cta call-to-action link field input textbox checkbox radio dropdown "
    "select form label text heading headline title subtitle subheading tagline slogan paragraph "
    "caption description copy content quote review rating star badge tag icon logo image photo "
    "picture img thumbnail avatar video embed map table list item entry card tile tab accordion "
    "toggle switch switcher picker selector player spinner loader box bar widget chatbot chat "
    "modal popup dialog tooltip menu breadcrumb counter timer countdown price plan question "
    "answer stat number phone email address name year date alt emoji gif bio headshot divider "
    "separator footnote disclaimer notice announcement screenshot blurb excerpt snippet favicon "
    "credit legend skeleton",
    "style": "padding margin spacing gap whitespace space shadow border outline corner radius "
    "colour color background gradient font typeface size weight opacity style theme palette "
    "contrast underline",
    "motion": "animation transition effect motion parallax",
    "behaviour": "validation tracking analytics event handler listener redirect submission "
    "integration webhook",
    "feedback": "message error toast notification confirmation alert feedback",
}

# Widgets that cannot exist without behaviour, so adding one needs the events agents.
INTERACTIVE = (
    "form toggle switch search filter accordion tab carousel slider modal popup lightbox "
    "countdown timer hamburger chatbot chat login signup sign-up subscribe calculator quiz poll "
    "booking checkout cart back-to-top player switcher picker selector"
)

# Verbs by the edit they make.
VERBS = {
    "add": "add insert include append prepend embed attach introduce create build give want "
    "need put place get show display throw",
    "remove": "remove delete drop eliminate strip ditch kill lose disable",
    "change": "change update edit replace rename rewrite reword modify alter set convert turn "
    "transform tweak correct",
    "move": "move reorder rearrange swap shuffle relocate shift reverse",
}
# The edit these verbs make with an (indefinite, definite) object: "put a button" adds one,
# "put the sidebar" moves it, "show the section" only points at something that exists.
PLACING = {
    "put": ("add", "move"),
    "place": ("add", "move"),
    "get": ("add", ""),
    "show": ("show", ""),
    "display": ("show", ""),
}
PHRASAL_REMOVE = {("turn", "off"), ("switch", "off"), ("take", "out"), ("get", "rid")}
WANT_TO = [["want", "to"], ["need", "to"], ["like", "to"]]

FILLERS = "please pls plz kindly can could would will you we i i'd we'd let's lets just also now "
FILLERS += "then go ahead and try"
# Words that end a noun phrase.
STOP = "to into in on onto at from for with without when whenever that which who where while so "
STOP += "below above under over inside between after before by of near next beside across "
STOP += "instead than like as if until or"
PLACES = "between below above under beneath underneath after before"
INSIDE = "into in inside to within"
DEFINITE = "the this these those its their our my your all every each"
INDEFINITE = "a an some another one two three four five several more extra new"
# Never cues, though the crude stems of some collide with cue words ("them" and "theme").
PRONOUNS = "it its them they their you we us me him her"
NEGATORS = "without no not don't dont never avoid skip"
RESIZE = "taller shorter wider narrower height width tall shrink enlarge widen narrow resize"
VAGUE = "better improve enhance polish redo revamp overhaul rework redesign refresh fix pop "
VAGUE += "professional something spruce jazz liven world-class"

_LET = r"\blet (?:me|us|users?|visitors?|people|customers?|readers?|guests?|them|anyone) \w"
# Multi-word cues: (pattern, group, strength).
PHRASES: tuple[tuple[str, str, str], ...] = (
    (r"\bopen(?:s|ed)?\b(?! sans)|\bclos(?:e|es|ed)\b(?! to)", "events", "strong"),
    (
        r"\b(?:link|go|take|lead|navigate|redirect|jump|point|bring)(?:s|es|ed|ing)?\b(?: \S+)"
        r"{0,4}? (?:to|back)\b|\bback (?:to (?:the )?)?(?:home|homepage|top)\b",
        "events",
        "strong",
    ),
    (
        r"\bscroll(?:s|ing)? (?:up|down|back|to)\b|\bswitch(?:es|ing|(?= between))\b",
        "events",
        "strong",
    ),
    (r"\be-?mails? (?:the|us|me|them|him|her|it|our|my|an?)\b", "events", "strong"),
    # A control that fails is its behaviour to fix: "broken links", "the form sends nothing".
    (
        r"\bbroken (?:\S+ ){0,2}?(?:links?|buttons?|forms?|menus?|toggles?|tabs?)\b|"
        r"\b(?:links?|buttons?|forms?|menus?|toggles?|tabs?) (?:is |are )?broken\b|"
        r"\b(?:does|do|doe?sn't|don't|won't) (?:nothing|not do anything|do anything)\b|"
        r"\bnothing happens\b|\b(?:doe?sn't|does not|won't|isn't|not) (?:send|submit)",
        "events",
        "strong",
    ),
    (r"\b(?:fire|send|emit|log|track)s? (?:an? )?(?:\S+ )?events?\b", "events", "strong"),
    (
        r"\bevery (?:\d+|few|couple|other) ?(?:s|secs?|seconds?|minutes?|mins?)\b",
        "events",
        "strong",
    ),
    (r"\b(?:once )?(?:per|a|each|every) (?:visitor|user|session|visit)\b", "events", "strong"),
    (
        r"\bauto-?(?:advanc|rotat|refresh)\w*|\b(?:sign|log)(?:s|ging)? (?:in|up|out)\b",
        "events",
        "weak",
    ),
    # Letting people do something is behaviour, and usually a control to do it with.
    (_LET, "events", "strong"),
    (_LET, "components", "weak"),
    (
        r"#[0-9a-f]{3,8}\b|\b\d+(?:px|rem|em|pt)\b|\b(?:top|bottom)[- ](?:right|left)\b",
        "styles",
        "strong",
    ),
    (r"\bbackground\b(?! (?:video|image|photo|picture|music|audio))", "styles", "strong"),
    (
        r"\b(?:on|for|in) (?:mobile|phones?|tablets?|desktops?|laptops?|(?:small|large|wide)"
        r"(?:er)? screens?)\b|\bbreakpoints?\b|\bmobile-(?:friendly|view|version)\b",
        "styles",
        "strong",
    ),
    (r"\bfull[- ](?:width|height|bleed)\b|\bside[- ]by[- ]side\b|\border of\b", "layout", "strong"),
    (
        r"\b(?:in|into) view\b|\bon scroll\b|\bscroll(?:ing)?[- ](?:effect|animation|reveal)|"
        r"\bas (?:they|it|you|the \S+|users?|visitors?) scroll|\bcount(?:s|ing)? up\b",
        "animation",
        "strong",
    ),
    (r"\bmouse ?(?:is )?(?:over|enters|moves)|\bmouseover\b", "animation", "strong"),
    (
        r"\b(?:say|says|saying|reads?|reading|called|named|titled|labell?ed) (?:to )?qqq",
        "components",
        "strong",
    ),
)

# Creating a page rather than editing one: "a new page", "build a landing page for ...".
NEW_PAGE = (
    r"\b(?:new|fresh|blank|brand-new) (?:(?!(?:to|the|of|in|on|at|for|with|this|that)\b)\S+ )"
    r"{0,3}?(?:page|homepage|site|website|webpage|landing)\b|\bfrom scratch\b|\bstart(?:ing)? over"
    r"|\b(?:create|build|make|design|generate|add|produce|draft|set up|need|want|give me) "
    r"(?:me |us )?(?:a|an|another|one) (?:(?!(?:to|the|of|in|on|at|for|with|that|which)\b)\S+ )"
    r"{0,5}?(?:page|homepage|site|website|webpage|one-pager|microsite)\b"
    r"|^(?:an? )?(?:\S+ ){0,3}?(?:landing page|homepage|page|website) (?:for|with|about)\b"
)
# Where a clause turns from what to build to the moment it happens.
TRIGGER = (
    r"\b(?:when|whenever|while|once|if|until|as (?:soon|they|it|you|the|users?|visitors?|people)"
    r"|on (?:hover|click|tap|scroll|load|submit|focus|page load))\b"
)
# Added at the top or bottom of the page, not in a corner.
EDGE = r"\bat the (?:very )?(?:top|bottom)\b(?![- ](?:right|left))"
URL = (
    r"https?://\S+|\S+@\S+\.\w+|\b[\w-]+(?:\.[\w-]+)*\.(?:com|io|org|net|dev|app)\b\S*"
    r"|(?<![\w/])/[a-z][\w/-]*"
)
QUOTED = r"(?<!\w)['\"‘“][^'\"‘’“”]+['\"’”](?!\w)"
CLAUSE = r"[,;:.!?()]+|\b(?:and|then|also|plus|but)\b|&"
TOKEN = r"[a-z0-9#$][a-z0-9#$'-]*"
# Words the typo fixer may correct to, beyond the lists above.
EXTRA_VOCABULARY = "landing homepage website"
