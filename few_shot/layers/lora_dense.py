import keras


@keras.saving.register_keras_serializable(package="few_shot")
class LoraDense(keras.layers.Dense):
    """keras Dense whose LoRA adapters (Keras' own `enable_lora`) are saved *unmerged*.

    Keras' Dense writes `kernel + A @ B` when LoRA is on and zeroes A and B on load: the reloaded
    layer predicts the same but cannot train on (A = B = 0 has no gradient), and a run resumed from
    its backup would add the adapters twice. Here a LoRA layer saves four arrays (the frozen kernel
    as loaded, bias, lora_kernel_a, lora_kernel_b) and loads them back as they were; without LoRA it
    is a plain Dense (same two arrays, same file layout). `few_shot.lora.merge_lora` folds them."""

    def save_own_variables(self, store):
        if not self.lora_enabled or self.quantization_mode is not None:
            return super().save_own_variables(store)
        for i, variable in enumerate((self._kernel, self.bias, self.lora_kernel_a, self.lora_kernel_b)):
            store[str(i)] = variable

    def load_own_variables(self, store):
        if not self.lora_enabled or self.quantization_mode is not None or len(store) != 4:
            # no LoRA here, or plain weights loaded into a LoRA layer (Keras resets A and B to zero then)
            return super().load_own_variables(store)
        for i, variable in enumerate((self._kernel, self.bias, self.lora_kernel_a, self.lora_kernel_b)):
            variable.assign(store[str(i)])
