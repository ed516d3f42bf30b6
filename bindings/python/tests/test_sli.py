#!/usr/bin/python3
"""The Python binding (bindings/python/sli), by unittest: sealed blobs and keyrings (round trips,
every refusal with its SLI_E_* name, rotation, files 0600, interop with the `sli` CLI both ways),
keys and signatures (each type; checked by openssl; a changed byte refused)."""
import os
import stat
import subprocess
import sys
import time
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import SLI, skip_if_asan  # noqa: E402

skip_if_asan()
import sli  # noqa: E402


class Seal(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.kr = sli.Keyring.generate()

    def tearDown(self):
        self.dir.cleanup()

    def test_round_trip_sizes(self):
        for n in (0, 1, 33, 4096, 1 << 20):
            data = os.urandom(n)
            blob = self.kr.seal(data, ad=b"row 7")
            self.assertEqual(len(blob), n + 33)
            self.assertEqual(self.kr.open(blob, ad=b"row 7"), data)

    def test_threads_and_sizes_around_the_reused_buffer(self):
        """Each thread's output buffer is reused: results from several threads at once, sizes
        growing and shrinking, and one past the 4 MiB where a fresh buffer is taken."""
        import threading
        errors = []

        def work(seed):
            import random
            r = random.Random(seed)
            for _ in range(200):
                data = os.urandom(r.choice((0, 1, 64, 5000, 300000)))
                blob = self.kr.seal(data, ad=b"%d" % seed)
                if self.kr.open(blob, ad=b"%d" % seed) != data:
                    errors.append(seed)
        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        big = os.urandom((4 << 20) + 1)
        small = self.kr.seal(b"small")
        self.assertEqual(self.kr.open(self.kr.seal(big)), big)
        self.assertEqual(self.kr.open(small), b"small")

    def test_refusals_are_named(self):
        blob = bytearray(self.kr.seal(b"card number", ad=b"customer 42"))
        with self.assertRaises(sli.Error) as e:
            self.kr.open(blob, ad=b"customer 43")
        self.assertEqual(e.exception.name, "SLI_E_PAYLOAD")
        blob[-1] ^= 1
        with self.assertRaises(sli.Error) as e:
            self.kr.open(blob, ad=b"customer 42")
        self.assertEqual(e.exception.name, "SLI_E_PAYLOAD")
        with self.assertRaises(sli.Error) as e:
            self.kr.open(b"\x01\x00", ad=b"")
        self.assertEqual(e.exception.name, "SLI_E_HEADER")
        with self.assertRaises(sli.Error) as e:
            sli.Keyring.generate().open(self.kr.seal(b"x"))
        self.assertEqual(e.exception.name, "SLI_E_NO_MATCH")
        self.assertTrue(e.exception.code < 0 and e.exception.message)

    def test_closed_keyring(self):
        kr = sli.Keyring.generate()
        blob = kr.seal(b"x")
        kr.close()
        kr.close()  # twice: nothing
        with self.assertRaises(ValueError):
            kr.seal(b"x")
        with self.assertRaises(ValueError):
            kr.open(blob)
        with sli.Keyring.generate() as k2:
            self.assertEqual(k2.open(k2.seal(b"y", b"a"), b"a"), b"y")
        with self.assertRaises(ValueError):
            k2.seal(b"y")

    def test_close_while_other_threads_use_it(self):
        """close() from one thread while 8 others seal, open or sign: they get ValueError once it
        is closed, never freed memory (found by review: a segfault)."""
        import threading
        for make, use in ((sli.Keyring.generate, lambda o, b: o.open(o.seal(b"x" * 64, b), b)),
                          (lambda: sli.Key.generate("ec"), lambda o, b: o.sign(b"x" * 64))):
            for _ in range(10):
                obj = make()
                errors, stop = [], threading.Event()

                def work():
                    while not stop.is_set():
                        try:
                            use(obj, b"ad")
                        except ValueError:
                            return
                        except Exception as e:  # noqa: BLE001
                            errors.append(e)
                            return
                ts = [threading.Thread(target=work) for _ in range(8)]
                for t in ts:
                    t.start()
                time.sleep(0.01)
                obj.close()
                stop.set()
                for t in ts:
                    t.join(10)
                self.assertEqual(errors, [])
                with self.assertRaises(ValueError):
                    use(obj, b"ad")
        k = sli.Key.generate("ed25519")
        s = k.signer()
        s.update(b"message")
        k.close()
        self.assertEqual(len(s.sign()), 64)  # the signer keeps its own key

    def test_rotation(self):
        old = self.kr.seal(b"before")
        new_kr = self.kr.rotate()
        self.assertEqual(len(new_kr.key_ids), 2)
        self.assertEqual(new_kr.key_ids[1], self.kr.key_ids[0])
        new = new_kr.seal(b"after")
        self.assertEqual(sli.sealed_key_id(new), new_kr.key_ids[0])
        self.assertEqual(sli.sealed_key_id(old), self.kr.key_ids[0])
        self.assertEqual(new_kr.open(old), b"before")
        with self.assertRaises(sli.Error):
            self.kr.open(new)  # the old keyring does not have the new key

    def test_files(self):
        path = os.path.join(self.dir.name, "ring")
        self.kr.save(path)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        again = sli.Keyring.load(path)
        self.assertEqual(again.key_ids, self.kr.key_ids)
        self.assertEqual(again.open(self.kr.seal(b"x")), b"x")
        bad = os.path.join(self.dir.name, "bad")
        with open(bad, "w") as f:
            f.write("not a keyring\n")
        with self.assertRaises(sli.Error) as e:
            sli.Keyring.load(bad)
        self.assertIn("bad", e.exception.message)  # the message names the file

    def test_cli_interop(self):
        path = os.path.join(self.dir.name, "ring")
        self.kr.save(path)
        blob = subprocess.run([SLI, "seal", "--keyring", path, "--ad", "x"], input=b"from C",
                              stdout=subprocess.PIPE, check=True).stdout
        self.assertEqual(self.kr.open(blob, ad=b"x"), b"from C")
        out = subprocess.run([SLI, "unseal", "--keyring", path, "--ad", "y"],
                             input=self.kr.seal(b"from python", ad=b"y"), stdout=subprocess.PIPE,
                             check=True).stdout
        self.assertEqual(out, b"from python")


class Keys(unittest.TestCase):
    def test_each_kind_signs_and_verifies(self):
        for kind, bits in (("ec", 0), ("ed25519", 0), ("rsa", 2048)):
            k = sli.Key.generate(kind, bits)
            self.assertEqual(k.kind, kind)
            sig = k.sign(b"message")
            k.verify(sig, b"message")
            with self.assertRaises(sli.Error) as e:
                k.verify(sig, b"messagE")
            self.assertEqual(e.exception.name, "SLI_E_SIGNATURE")

    def test_openssl_checks_the_signature(self):
        with tempfile.TemporaryDirectory() as d:
            k = sli.Key.generate("ec")
            pub, msg, sig = (os.path.join(d, n) for n in ("pub.pem", "msg", "sig"))
            for path, data in ((pub, k.public_pem()), (msg, b"signed in python"),
                               (sig, k.sign(b"signed in python"))):
                with open(path, "wb") as f:
                    f.write(data)
            r = subprocess.run(["openssl", "dgst", "-sha256", "-verify", pub, "-signature", sig, msg],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self.assertIn("Verified OK", r.stdout)

    def test_pem_round_trip_with_passphrase(self):
        with tempfile.TemporaryDirectory() as d:
            k = sli.Key.generate("ed25519")
            path = os.path.join(d, "k.pem")
            with open(path, "wb") as f:
                f.write(k.private_pem("a long passphrase"))
            with self.assertRaises(sli.Error) as e:
                sli.Key.load(path, "wrong")
            self.assertEqual(e.exception.name, "SLI_E_PASSWORD")
            again = sli.Key.load(path, "a long passphrase")
            again.verify(k.sign(b"m"), b"m")
            self.assertTrue(again.has_private)

    def test_bad_kind(self):
        with self.assertRaises(ValueError):
            sli.Key.generate("dsa")

    def test_version(self):
        self.assertRegex(sli.version(), r"^\d+\.\d+\.\d+$")


if __name__ == "__main__":
    unittest.main(verbosity=2)
