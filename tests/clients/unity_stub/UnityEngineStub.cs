// COMPILE-ONLY STUB of the few UnityEngine types that examples/unity/Assets/MrtBridge/Unity
// uses, so a plain C# compiler (mono mcs) can type-check that layer in CI, where
// Unity is not installed. Nothing here runs: every member that would do work throws.
// Signatures follow the UnityEngine scripting API; it is not part of the example.

using System;

namespace UnityEngine
{
    public class Object { }
    public class Component : Object
    {
        public T GetComponent<T>() { throw new NotSupportedException("compile-only stub"); }
    }
    public class Behaviour : Component { public bool enabled; }
    public class MonoBehaviour : Behaviour { }

    public sealed class AudioClip : Object
    {
        public static AudioClip Create(string name, int lengthSamples, int channels, int frequency, bool stream)
        { throw new NotSupportedException("compile-only stub"); }
    }

    public sealed class AudioSource : Behaviour
    {
        public AudioClip clip;
        public bool loop;
        public bool isPlaying { get { throw new NotSupportedException("compile-only stub"); } }
        public void Play() { throw new NotSupportedException("compile-only stub"); }
    }

    public static class AudioSettings
    {
        public static int outputSampleRate { get { throw new NotSupportedException("compile-only stub"); } }
    }

    public static class Time
    {
        public static float unscaledTime { get { throw new NotSupportedException("compile-only stub"); } }
    }

    public static class Mathf
    {
        public static float Max(float a, float b) { return a > b ? a : b; }
        public static int Max(int a, int b) { return a > b ? a : b; }
    }

    public static class Debug
    {
        public static void Log(object message) { throw new NotSupportedException("compile-only stub"); }
        public static void LogWarning(object message) { throw new NotSupportedException("compile-only stub"); }
    }

    [AttributeUsage(AttributeTargets.Field)] public sealed class HeaderAttribute : Attribute { public HeaderAttribute(string header) { } }
    [AttributeUsage(AttributeTargets.Field)] public sealed class TooltipAttribute : Attribute { public TooltipAttribute(string tooltip) { } }
    [AttributeUsage(AttributeTargets.Field)] public sealed class RangeAttribute : Attribute { public RangeAttribute(float min, float max) { } }
    [AttributeUsage(AttributeTargets.Class)] public sealed class AddComponentMenu : Attribute { public AddComponentMenu(string menuName) { } }
    [AttributeUsage(AttributeTargets.Class, AllowMultiple = true)] public sealed class RequireComponent : Attribute { public RequireComponent(Type type) { } }
}

namespace UnityEngine.Events
{
    public abstract class UnityEventBase { }
    public class UnityEvent<T0, T1> : UnityEventBase
    {
        public void Invoke(T0 arg0, T1 arg1) { throw new NotSupportedException("compile-only stub"); }
    }
    public class UnityEvent<T0> : UnityEventBase
    {
        public void Invoke(T0 arg0) { throw new NotSupportedException("compile-only stub"); }
    }
}
