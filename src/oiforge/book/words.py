"""Built-in word lists: kid-friendly concrete nouns, people classes, classes to never print.

Names are Open Images display names (v7 spelling; older versions resolve most of them too).
Matching is case-insensitive. A test checks that every name exists in the v7 class list.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

#: Concrete things a small child can point at: animals, foods, vehicles, toys, objects.
KID_FRIENDLY: Final = frozenset(
    n.lower()
    for n in """
Accordion|Acorn|Airplane|Alligator|Ambulance|Anchor|Ant|Antelope|Apple|Artichoke|Asparagus|
Avocado|Backpack|Bagel|Ball (Object)|Balloon|Banana|Barrel|Basket|Bat (Animal)|Beach ball|
Bear|Beaver|Bee|Bell pepper|Bench|Bicycle|Bird|Bison|Blueberry|Boat|Book|Bowl|Bread|Broccoli|
Bucket|Bull|Bus|Butterfly|Cabbage|Cake|Camel|Candle|Canoe|Car|Carrot|Cart|Castle|Cat|
Caterpillar|Cattle|Cello|Chair|Cheese|Cherry|Chicken|Clock|Coconut|Cookie|Corn|Crab|Crayon|
Crocodile|Cucumber|Cup|Cupcake|Deer|Dice|Dinosaur|Dog|Doll|Dolphin|Door|Doughnut|Dragonfly|Drum|
Duck|Eagle|Easel|Egg|Eggplant|Elephant|Envelope|Falcon|Feather|Ferris wheel|Fire hydrant|Fish|
Flag|Flamingo|Flower|Football|Fork|Fox|Frog|Giraffe|Glove|Goat|Goldfish|Goose|Gorilla|Grape|
Guitar|Hamster|Harbor seal|Harmonica|Harp|Hat|Hedgehog|Helicopter|Hippopotamus|Horse|Hot dog|
Hummingbird|Ibis|Ice cream|Ice cream cone|Iceberg|Igloo|Iguana|Insect|Ivy|Jaguar (Animal)|Jar|
Jeep|Jelly bean|Jellyfish|Jet ski|Jug|Juice|Kangaroo|Kayak|Kettle|Key|Kite|Kitten|Kiwi|
Kiwifruit|Koala|Koi|Ladder|Ladybug|Lamp|Lantern|Leaf|Lemon (plant)|Leopard|Lettuce|Lighthouse|
Lion|Lizard|Llama|Lobster|Lollipop|Lynx|Magpie|Mailbox|Mango|Monkey|Moon|Moose|Motorcycle|
Mouse|Muffin|Mug|Mushroom|Necklace|Nest|Newt|Noodle|Nut (Food)|Octopus|Olive|Onion|
Orange (fruit)|Ostrich|Otter|Owl|Oyster|Pancake|Panda|Parachute|Parrot|Pea|Peach|Peafowl|Pear|
Pelican|Pencil|Penguin|Piano|Pig|Pillow|Pineapple|Pizza|Plate|Pony|Pretzel|Pumpkin|Puppy|
Quail|Quill|Quilt|Quince|Quokka|Rabbit|Raccoon|Radish|Rainbow|Raspberry|Raven|Reindeer|
Rhinoceros|Robot|Rocket|Rose|Sailboat|Salmon|Sandwich|Saxophone|Scarf|Scooter|Seahorse|Seal|
Shark|Sheep|Shell|Shoe|Shovel|Shrimp|Skateboard|Skunk|Sled|Snail|Snake|Snowman|Snowplow|Sock|
Sparrow|Spider|Spoon|Squirrel|Starfish|Strawberry|Submarine|Sun|Sunflower|Surfboard|Swan|Table|
Taco|Tadpole|Teapot|Teddy bear|Television|Tennis ball|Tent|Tiger|Toaster|Tomato|Toothbrush|
Tortoise|Toucan|Towel|Toy|Tractor|Traffic light|Train|Tree|Tricycle|Truck|Trumpet|Turkey|
Turtle|Ukulele|Umbrella|Unicorn|Unicycle|Urn|Van|Vase|Vegetable|Vine|Violin|Volcano|Vulture|
Waffle|Wagon|Walnut|Walrus|Watch|Watermelon|Whale|Wheel|Whistle|Window|Wolf|Wombat|
Woodpecker|Worm|Xylophone|Yacht|Yak|Yam|Yo-yo|Yogurt|Yurt|Zebra|Zebra crossing|Zipper|Zucchini
""".replace("\n", "").split("|")
    if n
)

#: Classes that mean a person (or part of one) is in the photo. Hierarchy descendants of
#: Person and Human body are added at run time (see ``people.person_mids``).
PERSON_NAMES: Final = frozenset(
    n.lower()
    for n in """
Person|People|Human|Man|Woman|Boy|Girl|Child|Baby|Toddler|Smile|Selfie|Portrait|Crowd|
Gentleman|Lady|Bride|Team|Player|Skin|Finger|Hand|Lip|Eyebrow|Forehead|Chin|Cheek|Nose|Ear|
Eye|Hair|Neck|Arm|Leg|Foot|Toe|Thigh|Knee|Abdomen|Muscle|Tattoo|Facial expression|Facial hair|
Hairstyle|Beard|Moustache|Mouth|Head|Tooth|Skull|Fun|Happy|Youth|Family|Friendship|Audience|
Dancer|Model|Fashion|Fashion model|Athlete|Soldier|Police officer|Student|Mother|Father|Son|
Daughter|Sitting|Standing|Human body|Laugh|Gesture|Human action|Hug|Kiss|Wedding|Blond|
Brown hair|Black hair|Long hair|Eyelash|Nipple|Navel|Barechested|Torso|Waist|Wrist|Elbow|
Street fashion|Musician|Singer|Baby laughing|Cheek kissing|Human face|Human head|Human eye|
Human ear|Human nose|Human mouth|Human hair|Human hand|Human foot|Human arm|Human leg|
Human skin|Human positions|Human hair color|Shoulder (Body Part)|Child model|Child actor|
Portrait photography|Facial expression|Sunglasses|Glasses|Eyewear|Fashion accessory|Clothing
""".replace("\n", "").split("|")
    if n
)

#: Never a page of a children's book, whatever the counts say.
BLOCKED_NAMES: Final = frozenset(
    n.lower()
    for n in """
Weapon|Gun|Handgun|Rifle|Shotgun|Firearm|Bomb|Missile|Tank|Knife|Dagger|Sword|Axe|Bullet|
Alcohol|Beer|Wine|Cocktail|Whisky|Vodka|Liquor|Cigarette|Cigar|Tobacco|Syringe|Coffin|Skull|
Brassiere|Lingerie|Underwear|Swimwear|Miniskirt|Blood|Injury|Wound|Drug|Pill|Poison|Grave|
Cemetery|Tombstone|Explosion|Fire|Police|Prison|Jail|Handcuffs|Ammunition|Condom|Casino
""".replace("\n", "").split("|")
    if n
)

#: Image-level labels that mean "a drawing, not a photo" (with IsDepiction boxes).
DEPICTION_NAMES: Final = frozenset(
    n.lower()
    for n in [
        "Cartoon",
        "Drawing",
        "Illustration",
        "Painting",
        "Clip art",
        "Animated cartoon",
        "Sketch",
        "Animation",
        "Art",
        "Visual arts",
        "Modern art",
        "Graphic design",
        "Graphics",
        "Poster",
        "Logo",
        "Font",
        "Text",
        "Screenshot",
    ]
)

_PAREN_RE = re.compile(r"\s*\([^)]*\)\s*$")


def label_of(display_name: str) -> str:
    """The word printed on a page: ``Bat (Animal)`` -> ``Bat``; ``ice cream`` -> ``Ice cream``."""
    label = _PAREN_RE.sub("", display_name).strip() or display_name.strip()
    return label[:1].upper() + label[1:]


def letter_of(display_name: str) -> str | None:
    """The A-Z letter a name starts with (accents folded: ``Éclair`` -> E), else ``None``."""
    label = label_of(display_name)
    folded = unicodedata.normalize("NFKD", label[:1]).encode("ascii", "ignore").decode()
    first = folded[:1].upper()
    return first if "A" <= first <= "Z" else None
