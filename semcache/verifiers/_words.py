"""The word lists the structural features and rules read: stop words, question words,
negations, direction markers, number words, units under one name each, and antonyms.

Data, not logic (``features.py`` parses with them, ``rules.py`` decides with some).
Changing a list changes features: the verifier's model is refitted after it
(``scripts/train_verifier.py``).
"""

from __future__ import annotations

_STOP = frozenset("""
a an the is are was were be been being am do does did doing have has had having i me my
mine we our you your he him his she her it its they them their this that these those of
in on at for with about as into by to from up down out over under again then once here
there and or but if so than too very can could should would will shall may might must
just also any some such own same other more most much many what why how when where who
whom whose which get got make made go going way best good really need want use using
one s t
""".split())
_WH = frozenset("what why how when where who whom whose which".split())
_MODAL = frozenset("can could should would will shall may might must".split())
_DO = frozenset("do does did".split())
_NEGATION = frozenset("""
not no never none nobody nothing nowhere neither nor without cannot cant dont doesnt
didnt isnt arent wasnt werent wont wouldnt shouldnt couldnt hasnt havent hadnt aint
""".split())
# "A to B" and "B to A" keep every word and change the answer: a word that moves across
# one of these markers is the signal
_DIRECTION = frozenset("""
to from into than vs versus over against towards toward onto instead rather compared
before after
""".split())
_NUMBER_WORDS = {
    w: str(i) for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve".split())
} | {"first": "1", "second": "2", "third": "3", "fourth": "4", "fifth": "5",
     "hundred": "100", "thousand": "1000", "million": "1000000", "billion": "1e9",
     "half": "0.5", "twice": "2x", "double": "2x", "triple": "3x"}
_UNITS = frozenset("""
mm cm m km meter meters metre metres kilometer kilometers kilometre kilometres mile miles
inch inches foot feet ft yard yards mi kg g mg mcg gram grams kilogram kilograms lb lbs
pound pounds ounce ounces oz ton tons tonne l ml liter liters litre litres gallon gallons
cup cups tablespoon tablespoons tbsp teaspoon teaspoons tsp pint pints quart quarts
celsius fahrenheit kelvin c f k second seconds sec secs minute minutes min mins hour
hours hr hrs day days week weeks month months year years decade decades century
b kb mb gb tb kbps mbps gbps hz khz mhz ghz w kw kwh watt watts volt volts v amp amps mah
mph kmh kph percent usd eur gbp dollar dollars euro euros pound yen rupee rupees cent
cents calorie calories kcal degree degrees acre acres hectare hectares bit bits byte bytes
""".split())
# One name per unit, so that "200 degrees Celsius" and "200°C", "5 kilometres" and "5 km"
# read as the same quantity, and "in Fahrenheit ... 200°C" against "in Celsius ... 200°F"
# as the same words in another order (a reversal) rather than as four different units.
# Written without a dictionary file: the common units of everyday questions.
_UNIT_NAMES = {
    "celsius": "celsius centigrade", "fahrenheit": "fahrenheit", "kelvin": "kelvin",
    "km": "km kilometer kilometers kilometre kilometres kms",
    "meter": "meter meters metre metres", "cm": "cm centimeter centimeters centimetre "
    "centimetres", "mm": "mm millimeter millimeters millimetre millimetres",
    "mile": "mile miles mi", "inch": "inch inches", "foot": "foot feet ft",
    "yard": "yard yards yd yds", "kg": "kg kgs kilogram kilograms kilo kilos",
    "gram": "gram grams gramme grammes", "mg": "mg milligram milligrams",
    "mcg": "mcg microgram micrograms", "lb": "lb lbs pound pounds",
    "oz": "oz ounce ounces", "liter": "liter liters litre litres",
    "ml": "ml milliliter milliliters millilitre millilitres", "gallon": "gallon gallons",
    "cup": "cup cups", "tbsp": "tbsp tablespoon tablespoons", "tsp": "tsp teaspoon "
    "teaspoons", "minute": "minute minutes min mins", "hour": "hour hours hr hrs",
    "sec": "sec secs seconds", "usd": "usd dollar dollars", "eur": "eur euro euros",
    "percent": "percent pct percentage",
}
_UNIT_CANON = {w: name for name, ws in _UNIT_NAMES.items() for w in ws.split()}
# single letters are units only right after a number ("200 C" is not the C language)
_LETTER_UNITS = {"c": "celsius", "f": "fahrenheit", "k": "kelvin", "g": "gram",
                 "l": "liter", "s": "sec"}
_TEMPERATURES = frozenset({"celsius", "fahrenheit", "kelvin"})
_UNITS = _UNITS | frozenset(_UNIT_NAMES)
_ANTONYM_PAIRS = """
increase decrease raise lower rise fall up down high low higher lower highest lowest
big small bigger smaller biggest smallest large small larger smaller largest smallest
fast slow faster slower fastest slowest quick slow early late earlier later before after
buy sell bought sold open close opened closed enable disable enabled disabled on off
start stop begin end began ended install uninstall add remove added removed gain lose
win lose won lost best worst better worse good bad strong weak stronger weaker
advantage disadvantage advantages disadvantages pro con pros cons benefit risk benefits
risks positive negative safe dangerous safe unsafe legal illegal cheap expensive cheaper
pricier true false hot cold hotter colder warm cool heat cool light dark lighter darker
easy hard easier harder easiest hardest simple complex long short longer shorter
longest shortest heavy light tall short taller shorter tallest shortest young old
younger older youngest oldest new old newer older newest oldest rich poor happy sad
love hate like dislike accept reject import export upload download input output push
pull send receive sent received give take gave took borrow lend import export inside
outside above below upper lower top bottom left right north south east west first last
min max minimum maximum more less most least many few include exclude allow forbid
allowed forbidden agree disagree friend enemy pass fail passed failed profit loss
profitable unprofitable healthy unhealthy clean dirty wet dry full empty inflation
deflation encrypt decrypt compress decompress lock unlock connect disconnect freeze thaw
boiling freezing boil freeze ascending descending asc desc internal external import
export lowercase uppercase male female men women boy girl husband wife father mother
son daughter brother sister king queen employer employee landlord tenant buyer seller
teacher student parent child doctor patient win loss wins losses attack defend
smart dumb smart stupid stop keep stop continue quit keep quit continue wide narrow
thick thin deep shallow loud quiet expensive cheap costly cheap rare common
import export arrive depart arrival departure appear disappear include omit
increase reduce maximize minimize maximise minimise overestimate underestimate
overweight underweight overpaid underpaid overrated underrated over under
always never everyone nobody everything nothing all none before after
past future ancient modern beginner advanced junior senior hire fire employ fire
mature immature legal unlawful visible invisible possible impossible
likely unlikely common uncommon effective ineffective efficient inefficient
keep discard keep delete keep drop retain discard save discard save delete accept decline
approve reject arrive leave credit debit deposit withdraw deposits withdrawals asset
liability assets liabilities income expense income expenses encode decode serialize
deserialize zip unzip mount unmount subscribe unsubscribe follow unfollow block unblock
merge split join split inhale exhale vertical horizontal forward backward forwards
backwards ascend descend odd even multiply divide add subtract plus minus numerator
denominator acidic alkaline sender recipient sender receiver client server frontend
backend front back head tail prefix suffix row column rows columns width height push pop
allow deny whitelist blacklist allowlist denylist permit deny inbound outbound incoming
outgoing ingress egress debtor creditor lender borrower host guest predator prey
ancestor descendant superclass subclass yesterday tomorrow previous next last next
sunrise sunset dawn dusk raw cooked am pm day night summer winter morning evening
beat lose beat lost defeat lose defeated lost near far close far closer farther closest
farthest nearest farthest nearer farther discount markup strengthen weaken strengthens
weakens thicken thin formal casual formal informal synonym antonym synonyms antonyms
active passive domestic international local remote beginning end join leave joined left
appreciate depreciate appreciation depreciation bullish bearish asleep awake sink float
earn spend save spend start end starting ending started ended
greater less greater fewer greater smaller greatest least greatest smallest
""".split()
_ANTONYMS: dict[str, set[str]] = {}
for _a, _b in zip(_ANTONYM_PAIRS[::2], _ANTONYM_PAIRS[1::2]):
    _ANTONYMS.setdefault(_a, set()).add(_b)
    _ANTONYMS.setdefault(_b, set()).add(_a)
#: the words with an opposite, as a set: ``words.isdisjoint(_ANTONYMS)`` walked all of
#: the dictionary's keys, this walks the (few) words
_ANTONYM_WORDS = frozenset(_ANTONYMS)
