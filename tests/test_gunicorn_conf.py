"""gunicorn.conf.py: gunicorn started from the checkout reads it, and its hooks leave
the loaded app out of garbage collection and make young collections fewer."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_gunicorn_started_from_the_checkout_reads_the_settings():
    gunicorn = Path(sys.executable).with_name("gunicorn")
    printed = subprocess.run([str(gunicorn), "--print-config", "app:create_app()"], cwd=ROOT,
                             capture_output=True, text=True, timeout=60, check=True).stdout
    settings = {line.split("=", 1)[0].strip(): line.split("=", 1)[1].strip()
                for line in printed.splitlines() if "=" in line}
    assert settings["config"] == "./gunicorn.conf.py"
    assert settings["when_ready"] == "<when_ready()>"
    assert settings["post_worker_init"] == "<post_worker_init()>"


def test_a_worker_freezes_what_is_loaded_and_collects_young_objects_less_often():
    # In a fresh interpreter: freezing is for the whole process.
    script = (
        "import gc, runpy\n"
        "conf = runpy.run_path('gunicorn.conf.py')\n"
        "from app import create_app\n"
        "create_app({'TESTING': True, 'SECRET_KEY': 'x', 'DATABASE_URL': 'sqlite://'})\n"
        "assert gc.get_freeze_count() == 0 and gc.get_threshold()[0] == 700\n"
        "conf['post_worker_init'](None)\n"
        "print(gc.get_freeze_count(), *gc.get_threshold())\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, check=True).stdout.split()
    frozen, young, *older = map(int, out)
    assert frozen > 100_000  # the app's modules, templates' machinery, mappers
    assert young == 7000 and older == [10, 10]
