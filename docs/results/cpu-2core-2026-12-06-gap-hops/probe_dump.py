import struct, glob, sys
out=[]
for f in glob.glob(sys.argv[1]+'.*'):
    b=open(f,'rb').read()
    for i in range(0,len(b),32):
        t,pid,cpu,tag=struct.unpack_from('qii16s',b,i)
        if t==0: break
        out.append((t,pid,tag.split(b'\0')[0].decode(),cpu))
out.sort()
with open(sys.argv[1],'w') as w:
    for t,pid,tag,cpu in out: w.write(f"{pid} {tag} {t} {cpu}\n")
