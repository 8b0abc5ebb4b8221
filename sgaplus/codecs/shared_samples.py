"""One relaxed sample per latent in a pass of a model's own forward, however often, in whatever order and in
whatever form (a slice, a masked copy, a reshape) the model rounds it (docs/codecs.md, "The generic adapter's
relaxation").

Every rounding the generic adapter replaces hands its centred value v (value minus the centre it is rounded
around) to `SharedSamples`. The sample of v is keyed by v's bits: the first rounding of a pass that meets a value
draws its sample with the refiner's own rounding (its method, classes, temperature and noise: the op's noise,
keyed by the image's seed and the element's position in the image's row of that call); every later rounding in
the pass of a value with the same bits in the same image takes that sample, through autograd, so the gradient of
every path reaches y (through the graph of the path that drew it, which computes the same function of the same
latent and centre). Within a pass the sample is thus a function of (v, the image's seed of the step) alone: the
key is per image (the first dimension of what is rounded), never shared across a batch. Exact zeros (the other
half of a masked copy) stay exactly zero: two classes round an integer to itself, but three classes, the uniform
baseline and a shared sample would not. Two different latents of one image with bitwise equal centred values (of
measure zero for float latents) share a sample.
"""
import torch


def bit_keys(centred):
    """An int64 key per element, a row per image (B, n): its value's bits, made exact by float64 (float32 and half
    are exact there)."""
    return centred.detach().reshape(centred.shape[0], -1).to(torch.float64).view(torch.int64)


class SharedSamples:
    """The samples of one pass. `shared(centred)` is the relaxed sample of each element of centred (its centred
    value: the sample is centred too); `register(centred, sample)` gives values their sample in advance (z: the
    refiner relaxes z itself, so the model's rounding of z - medians must give its sample)."""

    def __init__(self, rounding):
        self.rounding = rounding  # the refiner's: rounding(value, offsets, stream) -> relaxed sample
        self.keys, self.samples = [], []  # per call: flat keys and flat samples, in the order they were met
        self.calls = 0

    def register(self, centred, sample):
        self.keys.append(bit_keys(centred))
        self.samples.append(sample.reshape(centred.shape[0], -1))

    def __call__(self, centred):
        keys, flat = bit_keys(centred), centred.reshape(centred.shape[0], -1)
        known, found = self.lookup(keys) if self.keys else (None, None)
        if found is not None and bool(found.all()):  # all met before (z's rounding): nothing to draw
            return known.view(centred.shape)
        drawn = self.rounding(centred, None, self.calls).reshape(centred.shape[0], -1)  # a stream per call
        self.calls += 1
        if found is not None:
            drawn = torch.where(found, known.to(drawn.dtype), drawn)
        sample = torch.where(flat == 0, flat.to(drawn.dtype), drawn)
        self.register(centred, sample)
        return sample.view(centred.shape)

    def lookup(self, keys):
        """(the sample met first for each key, whether it was met): stable sort, so the first of equal keys. Looked up
        in its image's row where every tensor of the pass so far has a row per image; among all of them where one is
        laid out otherwise (an entropy bottleneck rounds its values channels first)."""
        tables, samples = self.keys + [keys], self.samples
        if len({table.shape[0] for table in tables}) > 1:
            tables, samples = [t.reshape(1, -1) for t in tables], [s.reshape(1, -1) for s in samples]
        table, sample = torch.cat(tables[:-1], dim=1), torch.cat(samples, dim=1)
        ordered, order = torch.sort(table, dim=1, stable=True)
        wanted = tables[-1]
        where = torch.searchsorted(ordered, wanted).clamp(max=table.shape[1] - 1)
        found = ordered.gather(1, where) == wanted
        return sample.gather(1, order.gather(1, where)).reshape(keys.shape), found.reshape(keys.shape)
